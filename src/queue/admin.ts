/**
 * What an operator needs: each stream's state (from PostgreSQL, the truth, and Redis, the
 * queue), the two ways to move a blocked stream on (`skip` its blocked batch or `retry` it), and
 * `forget` for a finished stream. Reading state needs only read rights (SELECT on bulk_ingest).
 */
import { Queue } from 'bullmq';
import type { Redis, RedisOptions } from 'ioredis';
import pg from 'pg';
import { z } from 'zod';
import { PgBulkIngestError } from '../errors.ts';
import type { Json, Upsert } from '../ingest/options.ts';
import { integer, parseOptions } from '../ingest/parse-options.ts';
import type { BatchJobInput } from './batch-contract.ts';
import { committedState, committedStates, recordSkip } from './committed-state.ts';
import { DEFAULT_HISTORY_LIMIT, type LedgerEntry, ledgerBatchOf, ledgerHistory } from './ledger.ts';
import { Producer } from './producer.ts';
import {
  bullQueues,
  connectionOptionsSchema,
  type KickData,
  kickStream,
  type QueueNames,
} from './queue-config.ts';
import { listRejectedRows, type RejectedRowRecord, replayBatch } from './replay.ts';
import { type RewindOptions, type RewindResult, rewindStream } from './rewind.ts';
import { lockStreamAndTables } from './stream-locks.ts';
import { describeGap, nextBatch } from './stream-position.ts';
import { ensureStateTables, forgetCommittedState, inTransaction } from './stream-state.ts';
import { connectRedis, type StreamInfo, StreamStore } from './stream-store.ts';

export interface StreamStatus {
  readonly stream: string;
  /** Last committed sequence number (PostgreSQL). */
  readonly committedSeq: number;
  /** Last enqueued sequence number (Redis). */
  readonly enqueuedSeq: number;
  /** Batches enqueued and not yet committed. */
  readonly pending: number;
  readonly pendingBytes: number;
  /** High watermark of the last committed batch. */
  readonly highWatermark: Json | null;
  readonly lastCommitAt: Date | null;
  /** The parked batch the stream is stopped at, and why. */
  readonly blocked: { readonly seq: number; readonly reason: string; readonly since: Date } | null;
  /** Why the next batch failed, while it is being retried (transient failures: never parked). */
  readonly retrying: { readonly reason: string; readonly since: Date } | null;
  /**
   * Redis lost data of this stream: when it was found and what PostgreSQL and Redis each had
   * (docs/queue.md, "Redis losing data"). Stays until the next such event.
   */
  readonly redisGap: { readonly description: string; readonly at: Date } | null;
  /** The stream's state could not be read (it is shown, never hides the others). */
  readonly error: string | null;
}

/** Checked, and defaulted, by connectionOptionsSchema (queue-config.ts). */
export interface AdminOptions extends QueueNames {
  /** @default 'postgres://postgres@127.0.0.1:5432/postgres' */
  readonly databaseUrl?: string;
  /** @default 'redis://127.0.0.1:6379' */
  readonly redis?: string | RedisOptions;
}

/** Options of `admin.skip()`. */
export interface SkipOptions {
  /** The batch to skip; refused unless it is the stream's next one. @default the stream's next batch */
  readonly seq?: number;
  /** Why, kept in `bulk_ingest.skipped_batches`. @default the reason the batch was parked, else "skipped by an operator" */
  readonly reason?: string;
}

/** Options of `admin.history()`. */
export interface HistoryOptions {
  /** Most ledger rows returned, newest first. @default 20 */
  readonly limit?: number;
}

export const historyOptionsSchema = z.object({ limit: integer(1).default(DEFAULT_HISTORY_LIMIT) });

/** Options of `admin.replay()`. */
export interface ReplayOptions {
  /** The rejected rows to replay (ids in bulk_ingest.rejected_rows). @default every row of the stream not replayed yet */
  readonly ids?: readonly number[];
  /** Whether the replayed rows replace rows with the same key (a duplicate is otherwise quarantined again). @default Upsert.OFF */
  readonly upsert?: Upsert;
}

/**
 * Status, skip and retry in code (the `status`, `skip` and `retry` commands use it): reads each
 * stream's state from PostgreSQL and Redis, and moves a blocked stream on. `close()` when done.
 */
export class StreamAdmin {
  readonly #pool: pg.Pool;
  readonly #redis: Redis;
  readonly #store: StreamStore;
  readonly #queue: Queue<KickData>;
  readonly #options: z.output<typeof connectionOptionsSchema>;

  constructor(options: AdminOptions = {}) {
    this.#options = parseOptions(connectionOptionsSchema, options);
    this.#pool = new pg.Pool({ connectionString: this.#options.databaseUrl, max: 2 });
    this.#redis = connectRedis(this.#options.redis);
    this.#store = new StreamStore(this.#redis, this.#options.prefix);
    const queues = bullQueues(this.#options);
    this.#queue = new Queue<KickData>(queues.kicks, { connection: this.#redis, prefix: queues.prefix });
  }

  /** Every stream's status, or one's. Read-only, in PostgreSQL and in Redis. */
  async status(stream?: string): Promise<StreamStatus[]> {
    const streams = stream === undefined ? await this.#store.streams() : [stream];
    const [infos, states] = await Promise.all([
      this.#store.infos(streams),
      committedStates(this.#pool, streams),
    ]);
    return streams.map((s, i) => statusOf(s, infos[i] as StreamInfo | Error, states.get(s)));
  }

  /**
   * The stream's last batches as the ledger (bulk_ingest.batches) records them, newest first.
   * Read-only: works for a role that may only SELECT on bulk_ingest.
   */
  async history(stream: string, options: HistoryOptions = {}): Promise<LedgerEntry[]> {
    const { limit } = parseOptions(historyOptionsSchema, options, { context: { stream } });
    return ledgerHistory(this.#pool, stream, limit);
  }

  /**
   * Moves a stream past its next batch without applying it: the sequence number is committed in
   * PostgreSQL (recorded in bulk_ingest.skipped_batches with the reason), the batch is deleted
   * from Redis, and the stream is kicked. `seq`, if given, must be that next batch.
   */
  async skip(stream: string, options: SkipOptions = {}): Promise<number> {
    await ensureStateTables(this.#pool);
    const info = await this.#store.info(stream);
    const skipped = await inTransaction(this.#pool, async (client) => {
      await lockStreamAndTables(client, stream, []);
      const next = nextBatch(await committedState(client, stream), info.epochs);
      if (next === null || next.seq > info.enqueuedSeq)
        throw nothingToSkip(`Stream ${stream} has no pending batch to skip`, stream);
      if (options.seq !== undefined && options.seq !== next.seq) {
        throw nothingToSkip(
          `Stream ${stream}: the next batch is ${next.seq}, not ${options.seq}; only the next batch can be skipped`,
          stream,
        );
      }
      const header = await this.#store.header(stream, next.seq);
      const reason = options.reason ?? info.blocked?.reason ?? 'skipped by an operator';
      const position = { seq: next.seq, epoch: next.epoch };
      // Its ledger row says what the batch carried; nothing of it was written (rows: {}).
      await recordSkip(client, { stream, ...position }, ledgerBatchOf(next.seq, header, {}), reason);
      return position;
    });
    const state = await committedState(this.#pool, stream);
    await this.#store.markCommitted(stream, skipped.seq, skipped.epoch, state.highWatermark, Date.now());
    await this.#store.clearBlocked(stream);
    await kickStream(this.#queue, stream);
    return skipped.seq;
  }

  /**
   * Sets the stream's stored high watermark back to the one committed with batch `toSeq` (from
   * the ledger): in its first table's comment, in bulk_ingest.stream_state and in Redis, so that
   * a producer using HighWatermark.LATEST sends again from there. Rows already in the tables stay
   * (re-sending with an upsert is idempotent). Refused while batches are pending or the stream
   * is blocked, unless `force`. Recorded in bulk_ingest.rewinds.
   */
  async rewind(stream: string, options: RewindOptions): Promise<RewindResult> {
    return rewindStream(this.#pool, this.#store, stream, options);
  }

  /** Clears a stream's block and kicks it: its parked batch is tried again. */
  async retry(stream: string): Promise<void> {
    await this.#store.clearBlocked(stream);
    await kickStream(this.#queue, stream);
  }

  /**
   * Removes a finished stream: its keys in Redis and its committed state in PostgreSQL (the
   * tables and their high watermark comments stay). Refused while batches are pending. The next
   * batch enqueued under the name starts a new stream at seq 1.
   */
  async forget(stream: string): Promise<void> {
    const info = await this.#store.info(stream);
    if (info.pendingBatches > 0) {
      throw new PgBulkIngestError(
        'STREAM_BUSY',
        `Stream ${stream} has ${info.pendingBatches} pending batches: forget it once they are committed (or skipped)`,
        { stream },
      );
    }
    await forgetCommittedState(this.#pool, stream);
    await this.#store.forget(stream);
  }

  /** Rows quarantined under BadRows.QUARANTINE (bulk_ingest.rejected_rows), oldest first: of one stream, or all. Read-only. */
  async rejected(stream?: string): Promise<RejectedRowRecord[]> {
    const client = await this.#pool.connect();
    try {
      return await listRejectedRows(client, stream);
    } finally {
      client.release();
    }
  }

  /**
   * Enqueues a stream's rejected rows (those named by `ids`, else every one not replayed yet), as
   * they are in the table now, as one new batch at the end of the stream. Their `replayed_at` is
   * set when that batch commits; a row refused again is quarantined again with a new id.
   * Returns the batch's seq and the ids it carries (none: nothing enqueued).
   */
  async replay(stream: string, options: ReplayOptions = {}): Promise<{ seq: number | null; ids: number[] }> {
    const client = await this.#pool.connect();
    let job: BatchJobInput;
    let ids: number[];
    try {
      const rows = (await listRejectedRows(client, stream, options.ids)).filter(
        (r) => options.ids !== undefined || r.replayedAt === null,
      );
      if (options.ids) {
        const missing = options.ids.filter((id) => !rows.some((r) => r.id === id));
        if (missing.length > 0)
          throw new PgBulkIngestError(
            'INVALID_OPTIONS',
            `Stream ${stream} has no rejected rows with ids ${missing.join(', ')}`,
            { stream },
          );
        const done = rows.filter((r) => r.replayedAt !== null);
        if (done.length > 0)
          throw new PgBulkIngestError(
            'INVALID_OPTIONS',
            `Rejected rows ${done.map((r) => `${r.id} (at ${r.replayedAt?.toISOString()})`).join(', ')} of stream ${stream} were replayed already: replaying them again would write them twice`,
            { stream },
          );
      }
      ids = rows.map((r) => r.id);
      if (rows.length === 0) return { seq: null, ids };
      const state = await committedState(client, stream);
      job = await replayBatch(client, stream, rows, state.highWatermark, options.upsert);
    } finally {
      client.release();
    }
    const { redis, queueName, prefix } = this.#options;
    const producer = new Producer({ redis, queueName, prefix });
    try {
      const result = await producer.enqueueJob(job, `Replay of stream ${stream}`);
      return { seq: result.seq, ids };
    } finally {
      await producer.close();
    }
  }

  async close(): Promise<void> {
    await this.#queue.close();
    this.#redis.disconnect();
    await this.#pool.end();
  }
}

function statusOf(
  stream: string,
  info: StreamInfo | Error,
  state: Awaited<ReturnType<typeof committedState>> | undefined,
): StreamStatus {
  const redisGap = state?.redisGap ?? null;
  if (info instanceof Error) {
    return {
      stream,
      committedSeq: state?.seq ?? 0,
      enqueuedSeq: 0,
      pending: 0,
      pendingBytes: 0,
      highWatermark: state?.highWatermark ?? null,
      lastCommitAt: state?.committedAt ?? null,
      blocked: null,
      retrying: null,
      redisGap,
      error: info.message,
    };
  }
  const next = state ? nextBatch(state, info.epochs) : null;
  // A gap found but not yet recorded by a commit (nothing new to apply) still shows.
  const pendingGap = next?.gap ? { description: describeGap(stream, next.gap), at: new Date() } : null;
  return {
    stream,
    committedSeq: state?.seq ?? 0,
    enqueuedSeq: info.enqueuedSeq,
    pending: info.pendingBatches,
    pendingBytes: info.pendingBytes,
    highWatermark: state?.highWatermark ?? null,
    lastCommitAt: state?.committedAt ?? null,
    blocked: info.blocked
      ? { seq: info.blocked.seq, reason: info.blocked.reason, since: new Date(info.blocked.at) }
      : null,
    retrying: info.lastError ? { reason: info.lastError.reason, since: new Date(info.lastError.at) } : null,
    redisGap: pendingGap ?? redisGap,
    error: null,
  };
}

function nothingToSkip(message: string, stream: string) {
  return new PgBulkIngestError('NOTHING_TO_SKIP', message, { stream });
}
