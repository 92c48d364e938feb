/**
 * Applies a stream's pending batches, in order, exactly once: the heart of the worker.
 * See docs/queue.md for why this is safe whoever runs it, however often, and whenever it dies.
 */
import type pg from 'pg';
import { PgBulkIngestError } from '../errors.ts';
import { runIngest } from '../ingest/ingest.ts';
import type { BatchReport } from '../ingest/ingest-batch.ts';
import { type BlockingBackendsOptions, HighWatermark } from '../ingest/options.ts';
import { RowBlocks } from '../ingest/row-blocks.ts';
import type { IngestTable } from '../ingest/table-definition.ts';
import { parseBatchJob } from './batch-contract.ts';
import { describeGap, type NextBatch, nextBatch } from './stream-position.ts';
import {
  type CommittedState,
  committedState,
  lockStreamAndTables,
  recordCommit,
  streamConflict,
} from './stream-state.ts';
import type { BatchHeader, StreamInfo, StreamStore } from './stream-store.ts';
import { WirePartReader } from './wire-part.ts';

/**
 * Parts read from Redis per round trip. Parts are small (the Producer's partBytes, 48 KiB by
 * default, so that each is an ordinary young-generation string for V8 rather than a large object
 * that lingers until a full garbage collection); reading several at once keeps round trips few.
 */
const PARTS_PER_READ = 8;

export interface CommittedBatch {
  readonly stream: string;
  readonly seq: number;
  readonly header: BatchHeader;
  readonly report: BatchReport;
  readonly lockWaitMs: number;
}

export interface ApplyHooks {
  /** Called after each COMMIT, before Redis learns of it. */
  readonly onCommitted?: (batch: CommittedBatch) => void;
  /** Called when, under the stream lock, the batch turns out to be committed already by another worker. */
  readonly onDuplicate?: (stream: string, seq: number) => void;
  /** Redis was found to have lost data of the stream (a gap: see stream-position.ts). */
  readonly onRedisGap?: (stream: string, description: string) => void;
  /** Test-only fault injection point names: 'before-commit', 'after-commit'. */
  readonly fault?: (point: 'before-commit' | 'after-commit', stream: string, seq: number) => void;
}

/** A batch of a stream failed (and rolled back); `cause` says why. */
export class BatchApplyFailure extends Error {
  readonly stream: string;
  readonly seq: number;

  constructor(stream: string, seq: number, cause: unknown) {
    super(`Stream ${stream}, batch ${seq}: ${cause instanceof Error ? cause.message : String(cause)}`, {
      cause,
    });
    this.name = 'BatchApplyFailure';
    this.stream = stream;
    this.seq = seq;
  }
}

export type DrainResult =
  | { readonly kind: 'drained'; readonly applied: number }
  | { readonly kind: 'blocked'; readonly seq: number; readonly reason: string }
  | { readonly kind: 'stopped'; readonly applied: number };

export class StreamApplier {
  readonly #pool: pg.Pool;
  readonly #store: StreamStore;
  readonly #blockingBackends: BlockingBackendsOptions | false;
  readonly #hooks: ApplyHooks;
  /** Connections with a batch in flight, so a shutdown can abandon them. */
  readonly #active = new Set<pg.PoolClient>();

  constructor(
    pool: pg.Pool,
    store: StreamStore,
    blockingBackends: BlockingBackendsOptions | false,
    hooks: ApplyHooks = {},
  ) {
    this.#pool = pool;
    this.#store = store;
    this.#blockingBackends = blockingBackends;
    this.#hooks = hooks;
  }

  /**
   * Applies the stream's pending batches in order until none is pending, the stream is blocked,
   * or `signal` asks to stop. Throws the first failure of a batch (it rolled back) as a
   * BatchApplyFailure.
   */
  async drain(stream: string, signal?: AbortSignal): Promise<DrainResult> {
    let applied = 0;
    for (;;) {
      if (signal?.aborted) return { kind: 'stopped', applied };
      const info = await this.#store.info(stream);
      if (info.blocked) return { kind: 'blocked', seq: info.blocked.seq, reason: info.blocked.reason };
      const state = await committedState(this.#pool, stream);
      const next = nextBatch(state, info.epochs);
      if (next === null) return { kind: 'drained', applied }; // Redis has never seen the stream
      if (state.owner !== null && state.owner !== this.#store.prefix) {
        // Else its committed seq, another deployment's, would pass for ours: batches "applied".
        throw new BatchApplyFailure(
          stream,
          next.seq,
          streamConflict(stream, state.owner, this.#store.prefix),
        );
      }
      if (next.seq > info.enqueuedSeq) {
        await this.#catchUp(stream, state, next, info);
        return { kind: 'drained', applied };
      }
      const header = await this.#store.header(stream, next.seq);
      if (header === null) {
        // Freed by a commit we have not seen yet, or lost: PostgreSQL tells which.
        if (sameState(await committedState(this.#pool, stream), state)) {
          const missing = new PgBulkIngestError(
            'BATCH_MISSING',
            `Stream ${stream}: batch ${next.seq} is missing from Redis (enqueued up to ${info.enqueuedSeq}, committed ${state.seq}): it cannot be applied. Was Redis or PostgreSQL restored from a backup? Skip it to go on.`,
            { stream, seq: next.seq },
          );
          throw new BatchApplyFailure(stream, next.seq, missing);
        }
        continue;
      }
      try {
        if (await this.applyOne(stream, next, state, header)) applied += 1;
      } catch (error) {
        throw new BatchApplyFailure(stream, next.seq, error);
      }
    }
  }

  /**
   * Nothing to apply. If Redis lags PostgreSQL (a worker died between COMMIT and telling Redis,
   * or Redis lost writes), bring its mirror up to date; a Redis that never assigned the seq
   * PostgreSQL committed lost data: report it.
   */
  async #catchUp(stream: string, state: CommittedState, next: NextBatch, info: StreamInfo) {
    if (next.gap) this.#hooks.onRedisGap?.(stream, describeGap(stream, next.gap));
    else if (state.epoch === next.epoch && state.seq > info.enqueuedSeq) {
      this.#hooks.onRedisGap?.(
        stream,
        `Stream ${stream}: Redis lost data. PostgreSQL committed batch ${state.seq}, but Redis remembers only ${info.enqueuedSeq} enqueued: batches acknowledged after ${info.enqueuedSeq} and not committed may be lost. New batches are numbered from ${state.seq + 1}.`,
      );
    }
    if (info.committedSeq < next.committedInRedis || state.seq > info.enqueuedSeq) {
      const seq = state.epoch === next.epoch ? state.seq : next.committedInRedis;
      await this.#store.markCommitted(stream, seq, next.epoch, state.highWatermark, Date.now());
    }
  }

  /** One batch in one transaction; false if another worker committed it first (a duplicate). */
  async applyOne(
    stream: string,
    next: NextBatch,
    before: CommittedState,
    header: BatchHeader,
  ): Promise<boolean> {
    const { seq, epoch } = next;
    const { tables, options } = this.#parseHeader(stream, seq, header);
    const client = await this.#pool.connect();
    // A connection lost mid-batch (PostgreSQL restarting) is also emitted as an 'error' event on
    // the client, which would crash the process if nobody listened. The query in flight rejects
    // with the same error, and that is how the failure is reported and retried.
    client.on('error', ignoreClientErrorEvent);
    this.#active.add(client);
    let healthy = false;
    try {
      let lockWaitMs = 0;
      let report: BatchReport | undefined;
      const gap = next.gap ? describeGap(stream, next.gap) : null;
      await runIngest(
        client,
        tables,
        () => [[header.highWatermark, header.metadata, this.#rows(stream, seq, header, tables)]],
        { ...options, highWatermark: HighWatermark.EARLIEST, blockingBackends: this.#blockingBackends },
        {
          afterBegin: async (c) => {
            lockWaitMs = await lockStreamAndTables(c, stream, tables);
            // Under the lock: unchanged, or another worker applied this batch meanwhile.
            return sameState(await committedState(c, stream), before);
          },
          beforeCommit: async (c) => {
            await recordCommit(c, {
              stream,
              seq,
              epoch,
              highWatermark: header.highWatermark,
              batchId: header.batchId,
              prefix: this.#store.prefix,
              gap,
            });
            this.#hooks.fault?.('before-commit', stream, seq);
          },
        },
        (r) => {
          report = r;
        },
      );
      healthy = true;
      if (!report?.applied) {
        this.#hooks.onDuplicate?.(stream, seq);
        return false;
      }
      this.#hooks.fault?.('after-commit', stream, seq);
      if (gap) this.#hooks.onRedisGap?.(stream, gap);
      this.#hooks.onCommitted?.({ stream, seq, header, report, lockWaitMs });
      await this.#store.markCommitted(stream, seq, epoch, header.highWatermark, Date.now());
      return true;
    } finally {
      this.#active.delete(client);
      client.off('error', ignoreClientErrorEvent);
      // A client that failed mid-batch may be broken (or mid-COPY): never give it back to the pool.
      client.release(healthy ? undefined : true);
    }
  }

  /** Ends the connections of batches in flight: PostgreSQL rolls them back. */
  async abandon(): Promise<void> {
    await Promise.all([...this.#active].map((client) => client.end().catch(() => undefined)));
  }

  #parseHeader(stream: string, seq: number, header: BatchHeader) {
    const { job, tables } = parseBatchJob(
      {
        version: header.version,
        tables: header.tables,
        highWatermark: header.highWatermark,
        metadata: header.metadata,
        rows: [],
        options: header.options,
      },
      `Stream ${stream}, batch ${seq}`,
    );
    return { tables, options: job.options };
  }

  /**
   * The batch's rows, read from Redis a few parts at a time (memory holds those parts, not the
   * batch), as one block of rows per part.
   */
  #rows(stream: string, seq: number, header: BatchHeader, tables: readonly IngestTable[]): RowBlocks {
    const store = this.#store;
    const label = `Stream ${stream}, batch ${seq}`;
    // Every value was validated before it was enqueued (Producer, or admission of a foreign
    // job); PostgreSQL has the last word. The reader checks that each row names a table of the
    // batch, as a row of another table would otherwise be skipped silently.
    const reader = new WirePartReader(tables, label);
    return new RowBlocks(
      (async function* () {
        for (let first = 0; first < header.parts; first += PARTS_PER_READ) {
          const parts = await store.parts(header, first, Math.min(PARTS_PER_READ, header.parts - first));
          for (const [i, part] of parts.entries()) {
            if (part === null)
              throw new PgBulkIngestError(
                'BATCH_MISSING',
                `${label}: part ${first + i} of its rows is missing from Redis`,
                {
                  stream,
                  seq,
                },
              );
            yield reader.rows(part.toString());
          }
        }
      })(),
    );
  }
}

function ignoreClientErrorEvent(): void {}

function sameState(a: CommittedState, b: CommittedState): boolean {
  return a.seq === b.seq && a.epoch === b.epoch;
}
