/**
 * What an operator needs: each stream's state (from PostgreSQL, the truth, and Redis, the
 * queue), and the two ways to move a blocked stream on: `skip` its blocked batch or `retry` it.
 */
import { Queue } from 'bullmq';
import type { Redis, RedisOptions } from 'ioredis';
import pg from 'pg';
import { PgBulkIngestError } from '../errors.ts';
import type { Json } from '../ingest/options.ts';
import {
  DEFAULT_DATABASE_URL,
  DEFAULT_PREFIX,
  DEFAULT_QUEUE_NAME,
  DEFAULT_REDIS_URL,
  KICK_JOB,
  KICK_JOB_OPTIONS,
  type KickData,
  kickJobId,
  type QueueNames,
} from './queue-config.ts';
import {
  committedSeq,
  committedState,
  ensureStateTables,
  lockStreamAndTables,
  recordSkip,
} from './stream-state.ts';
import { connectRedis, StreamStore } from './stream-store.ts';

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
}

export interface AdminOptions extends QueueNames {
  /** @default process.env.DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres' */
  readonly databaseUrl?: string;
  /** @default process.env.REDIS_URL ?? 'redis://127.0.0.1:6379' */
  readonly redis?: string | RedisOptions;
}

/** Options of `admin.skip()`. */
export interface SkipOptions {
  /** The batch to skip; refused unless it is the stream's next one. @default the stream's next batch */
  readonly seq?: number;
  /** Why, kept in `bulk_ingest.skipped_batches`. @default the reason the batch was parked, else "skipped by an operator" */
  readonly reason?: string;
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

  constructor(options: AdminOptions = {}) {
    this.#pool = new pg.Pool({
      connectionString: options.databaseUrl ?? process.env.DATABASE_URL ?? DEFAULT_DATABASE_URL,
      max: 2,
    });
    this.#redis = connectRedis(options.redis ?? process.env.REDIS_URL ?? DEFAULT_REDIS_URL);
    this.#store = new StreamStore(this.#redis, options.prefix ?? DEFAULT_PREFIX);
    this.#queue = new Queue<KickData>(options.queueName ?? DEFAULT_QUEUE_NAME, { connection: this.#redis });
  }

  /** Every stream's status, or one's. */
  async status(stream?: string): Promise<StreamStatus[]> {
    await ensureStateTables(this.#pool);
    const streams = stream === undefined ? await this.#store.streams() : [stream];
    return Promise.all(streams.map((s) => this.#statusOf(s)));
  }

  async #statusOf(stream: string): Promise<StreamStatus> {
    const [state, info] = await Promise.all([committedState(this.#pool, stream), this.#store.info(stream)]);
    return {
      stream,
      committedSeq: state.seq,
      enqueuedSeq: info.enqueuedSeq,
      pending: Math.max(0, info.enqueuedSeq - state.seq),
      pendingBytes: info.pendingBytes,
      highWatermark: state.highWatermark,
      lastCommitAt: state.committedAt,
      blocked: info.blocked
        ? { seq: info.blocked.seq, reason: info.blocked.reason, since: new Date(info.blocked.at) }
        : null,
    };
  }

  /**
   * Moves a stream past its next batch without applying it: the sequence number is committed in
   * PostgreSQL (recorded in bulk_ingest.skipped_batches with the reason), the batch is deleted
   * from Redis, and the stream is kicked. `seq`, if given, must be that next batch.
   */
  async skip(stream: string, options: SkipOptions = {}): Promise<number> {
    await ensureStateTables(this.#pool);
    const info = await this.#store.info(stream);
    const client = await this.#pool.connect();
    let skipped: number;
    try {
      await client.query('BEGIN');
      await lockStreamAndTables(client, stream, []);
      skipped = (await committedSeq(client, stream)) + 1;
      if (skipped > info.enqueuedSeq)
        throw adminError(`Stream ${stream} has no pending batch to skip (committed ${skipped - 1})`, stream);
      if (options.seq !== undefined && options.seq !== skipped) {
        throw adminError(
          `Stream ${stream}: the next batch is ${skipped}, not ${options.seq}; only the next batch can be skipped`,
          stream,
        );
      }
      const header = await this.#store.header(stream, skipped);
      const reason = options.reason ?? info.blocked?.reason ?? 'skipped by an operator';
      await recordSkip(client, stream, skipped, header?.batchId ?? null, reason);
      await client.query('COMMIT');
    } catch (error) {
      await client.query('ROLLBACK').catch(() => undefined);
      throw error;
    } finally {
      client.release();
    }
    const state = await committedState(this.#pool, stream);
    await this.#store.markCommitted(stream, skipped, state.highWatermark, Date.now());
    await this.#store.clearBlocked(stream);
    await this.#kick(stream, `skip-${skipped}`);
    return skipped;
  }

  /** Clears a stream's block and kicks it: its parked batch is tried again. */
  async retry(stream: string): Promise<void> {
    await this.#store.clearBlocked(stream);
    await this.#kick(stream, `retry-${Date.now()}`);
  }

  async close(): Promise<void> {
    await this.#queue.close();
    this.#redis.disconnect();
    await this.#pool.end();
  }

  async #kick(stream: string, discriminator: string) {
    await this.#queue.add(
      KICK_JOB,
      { stream },
      { ...KICK_JOB_OPTIONS, jobId: kickJobId(stream, discriminator) },
    );
  }
}

function adminError(message: string, stream: string) {
  return new PgBulkIngestError('INVALID_OPTIONS', message, { stream });
}
