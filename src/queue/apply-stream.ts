/**
 * Applies a stream's pending batches, in order, exactly once: the heart of the worker.
 * See docs/queue.md for why this is safe whoever runs it, however often, and whenever it dies.
 */
import type pg from 'pg';
import { PgBulkIngestError } from '../errors.ts';
import { EncodedRows } from '../ingest/encoded-rows.ts';
import { stringifyJson } from '../ingest/exact-json.ts';
import { runIngest } from '../ingest/ingest.ts';
import type { BatchReport } from '../ingest/ingest-batch.ts';
import {
  BadRows,
  type BlockingBackendsOptions,
  Delete,
  HighWatermark,
  type Json,
} from '../ingest/options.ts';
import type { RejectedRow, RejectedRowOrigin } from '../ingest/rejected-rows.ts';
import type { IngestTable } from '../ingest/table-definition.ts';
import { type BatchOptions, parseBatchJob } from './batch-contract.ts';
import { type CommittedState, committedState, recordCommit, streamConflict } from './committed-state.ts';
import { isPoison } from './failures.ts';
import { ledgerBatchOf } from './ledger.ts';
import { markReplayed } from './replay.ts';
import { lockStreamAndTables } from './stream-locks.ts';
import { describeGap, type Epoch, type NextBatch, nextBatch } from './stream-position.ts';
import type { BatchHeader, PartRef, StreamInfo, StreamStore } from './stream-store.ts';
import { WirePart, WirePartReader } from './wire-part.ts';

/** A header's tables, defined, and its options, validated. */
interface ParsedDefinition {
  readonly tables: IngestTable[];
  readonly options: BatchOptions;
}

/** Distinct definitions remembered (the oldest is forgotten first). */
const MAX_KNOWN_DEFINITIONS = 256;

/**
 * What one round trip reads from Redis: parts (of one batch or of many consecutive small ones)
 * up to about this many bytes, at most MAX_PARTS_PER_READ keys. Parts are small (the Producer's
 * partBytes, 48 KiB by default, so that each is an ordinary young-generation string for V8 rather
 * than a large object that lingers until a full garbage collection): a large batch is read 8
 * parts at a time; a group of 10-row batches, a few hundred batches at a time.
 */
const BYTES_PER_READ = 8 * 48 * 1024;
const MAX_PARTS_PER_READ = 256;

/** One committed transaction: one batch, or several consecutive ones coalesced. */
export interface CommittedBatch {
  readonly stream: string;
  /** The last batch's seq (the stream's committed seq now). */
  readonly seq: number;
  /** The last batch's header. */
  readonly header: BatchHeader;
  /** Every batch of the transaction, in order (one unless coalesced). */
  readonly headers: readonly BatchHeader[];
  readonly report: BatchReport;
  readonly lockWaitMs: number;
}

/**
 * Bounds on coalescing: consecutive pending batches of a stream that share tables and options
 * are applied in one transaction, up to these. Each batch still becomes visible all at once.
 */
export interface CoalesceLimits {
  /** @default 200 */
  readonly maxBatches: number;
  /** @default 200000 */
  readonly maxRows: number;
  /** Wire bytes. @default 33554432 (32 MiB) */
  readonly maxBytes: number;
}

export const DEFAULT_COALESCE_LIMITS: CoalesceLimits = {
  maxBatches: 200,
  maxRows: 200_000,
  maxBytes: 32 * 1024 * 1024,
};

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
  readonly #limits: CoalesceLimits;
  /** Connections with a batch in flight, so a shutdown can abandon them. */
  readonly #active = new Set<pg.PoolClient>();
  /**
   * The tables and options of the headers seen, by their JSON: a stream's batches share them, and
   * validating them again (zod, defineTable) was a large part of a small transaction's CPU. The
   * same IngestTable objects also let the core's per-table caches hit.
   */
  readonly #definitions = new Map<string, ParsedDefinition>();

  constructor(
    pool: pg.Pool,
    store: StreamStore,
    blockingBackends: BlockingBackendsOptions | false,
    hooks: ApplyHooks = {},
    limits: CoalesceLimits = DEFAULT_COALESCE_LIMITS,
  ) {
    this.#pool = pool;
    this.#store = store;
    this.#blockingBackends = blockingBackends;
    this.#hooks = hooks;
    this.#limits = limits;
  }

  /**
   * Applies the stream's pending batches in order until none is pending, the stream is blocked,
   * or `signal` asks to stop. Throws the first failure of a batch (it rolled back) as a
   * BatchApplyFailure.
   */
  async drain(stream: string, signal?: AbortSignal): Promise<DrainResult> {
    let applied = 0;
    let singleUntil = 0;
    // The state this drain's last commit left: the next round starts from it without asking
    // PostgreSQL (the check under the lock still does, so another worker's commit meanwhile only
    // makes the group a duplicate, and the round after reads the state again).
    let left: CommittedState | null = null;
    for (let round = 0; ; round++) {
      if (signal?.aborted) return { kind: 'stopped', applied };
      // The first read takes the stream's pending kick: this drain sees every batch appended so
      // far, and an append from now on kicks again (stream-store.ts).
      const info = await this.#store.info(stream, { takeKick: round === 0 });
      if (info.blocked) return { kind: 'blocked', seq: info.blocked.seq, reason: info.blocked.reason };
      const state = left ?? (await committedState(this.#pool, stream));
      left = null;
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
      // After a coalesced group failed on its data, its batches go one at a time, so that only
      // the offending one is parked and the ones before it commit.
      const most = next.seq <= singleUntil ? 1 : this.#limits.maxBatches;
      const last = Math.min(info.enqueuedSeq, epochEnd(info.epochs, next.epoch), next.seq + most - 1);
      const headers = await this.#store.headers(stream, next.seq, last - next.seq + 1);
      const first = headers[0] ?? null;
      if (first === null || (first.epoch !== undefined && first.epoch !== next.epoch)) {
        // Freed by a commit we have not seen yet, or numbered again by a Redis that lost data
        // since we looked (a seq of another epoch): look again. Only a view that did not move
        // means the batch is really gone.
        if (await this.#viewUnchanged(stream, state, info)) {
          const what =
            first === null
              ? `batch ${next.seq} is missing from Redis (epoch ${next.epoch})`
              : `batch ${next.seq} of epoch ${next.epoch} is not in Redis, which holds a batch of epoch ${first.epoch} under that number`;
          const missing = new PgBulkIngestError(
            'BATCH_MISSING',
            `Stream ${stream}: ${what}; enqueued up to ${info.enqueuedSeq}, committed ${state.seq}. It cannot be applied. Was Redis or PostgreSQL restored from a backup? Skip it to go on.`,
            { stream, seq: next.seq },
          );
          throw new BatchApplyFailure(stream, next.seq, missing);
        }
        continue;
      }
      const group = coalescible(headers, this.#limits);
      try {
        const committed = await this.applyGroup(stream, next, state, group);
        if (committed !== null) {
          applied += group.length;
          left = committed;
        }
      } catch (error) {
        if (group.length > 1 && isPoison(error)) {
          singleUntil = next.seq + group.length - 1;
          continue;
        }
        throw new BatchApplyFailure(stream, next.seq, error);
      }
    }
  }

  /** Whether PostgreSQL's committed state and Redis's view of the stream are as read before. */
  async #viewUnchanged(stream: string, state: CommittedState, info: StreamInfo): Promise<boolean> {
    const [now, again] = await Promise.all([committedState(this.#pool, stream), this.#store.info(stream)]);
    return (
      sameState(now, state) &&
      again.enqueuedSeq === info.enqueuedSeq &&
      JSON.stringify(again.epochs) === JSON.stringify(info.epochs)
    );
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

  /**
   * Consecutive batches `next.seq`, `next.seq + 1`, ... (`headers`, sharing tables and options)
   * in one transaction: their rows in order, through one COPY per table (for an upsert the last
   * row of a key wins across the group, as applying them one by one would leave it), the last
   * one's high watermark, and the committed seq set to the last one's. Returns the stream's
   * committed state as the commit recorded it, or null if another worker committed them first
   * (a duplicate).
   */
  async applyGroup(
    stream: string,
    next: NextBatch,
    before: CommittedState,
    headers: readonly BatchHeader[],
  ): Promise<CommittedState | null> {
    const first = headers[0] as BatchHeader;
    const header = headers[headers.length - 1] as BatchHeader;
    const seq = next.seq + headers.length - 1;
    const { epoch } = next;
    const { tables, options } = this.#parseHeader(stream, next.seq, first);
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
      let committed: CommittedState | null = null;
      const gap = next.gap ? describeGap(stream, next.gap) : null;
      // One reader per batch: each counts its own batch's rows per table for its ledger row.
      const readers = headers.map(
        (h, i) =>
          new WirePartReader(
            tables,
            `Stream ${stream}, batch ${next.seq + i}`,
            h.options.badRows === BadRows.QUARANTINE, // keeps each row's wire text to quarantine it
          ),
      );
      const rows = new EncodedRows(this.#groupRows(stream, next.seq, headers, readers));
      await runIngest(
        client,
        tables,
        () => [[header.highWatermark, header.metadata, rows]],
        { ...options, highWatermark: HighWatermark.EARLIEST, blockingBackends: this.#blockingBackends },
        {
          connectionIdle: true, // from the pool, which never gets a failed connection back
          afterBegin: async (c) => {
            // Summed: a batch that alters a table in place first runs this three times.
            lockWaitMs += await lockStreamAndTables(c, stream, tables);
            // Under the lock: unchanged, or another worker applied these batches meanwhile.
            return sameState(await committedState(c, stream), before);
          },
          rejectedRowOrigin: rejectedRowOrigin(stream, next.seq, headers),
          refusedRows: refusedRows(headers),
          beforeCommit: async (c, rejected) => {
            await markReplayed(c, headers);
            const rejectedPerSeq = rejectedRowsPerSeq(stream, next.seq, headers, rejected);
            const batches = headers.map((h, i) =>
              ledgerBatchOf(
                next.seq + i,
                h,
                (readers[i] as WirePartReader).rowsPerTable(),
                rejectedPerSeq.get(next.seq + i) ?? 0,
              ),
            );
            committed = await recordCommit(
              c,
              {
                stream,
                seq,
                epoch,
                highWatermark: header.highWatermark,
                batchId: header.batchId,
                prefix: this.#store.prefix,
                gap,
              },
              batches,
            );
            this.#hooks.fault?.('before-commit', stream, seq);
          },
        },
        (r) => {
          report = r;
        },
      );
      healthy = true;
      if (!report?.applied || committed === null) {
        this.#hooks.onDuplicate?.(stream, next.seq);
        return null;
      }
      this.#hooks.fault?.('after-commit', stream, seq);
      if (gap) this.#hooks.onRedisGap?.(stream, gap);
      this.#hooks.onCommitted?.({ stream, seq, header, headers, report, lockWaitMs });
      await this.#store.markCommitted(stream, seq, epoch, header.highWatermark, Date.now());
      return committed;
    } finally {
      this.#active.delete(client);
      client.off('error', ignoreClientErrorEvent);
      // A client that failed mid-batch may be broken (or mid-COPY): never give it back to the pool.
      client.release(healthy ? undefined : true);
    }
  }

  /**
   * The rows of each batch of a group, in order, one block per part, read from Redis a few
   * parts at a time (memory holds those parts, not the group). Every value was validated before
   * it was enqueued (Producer, or admission of a foreign job); PostgreSQL has the last word. Each
   * batch's reader checks that each row names a table of the batch, as a row of another table
   * would otherwise be skipped silently.
   */
  async *#groupRows(
    stream: string,
    firstSeq: number,
    headers: readonly BatchHeader[],
    readers: readonly WirePartReader[],
  ) {
    for (const chunk of partReads(headers)) {
      const parts = await this.#store.partsOf(stream, chunk);
      for (const [j, part] of parts.entries()) {
        const { index, position } = chunk[j] as GroupPartRef;
        if (part === null) {
          const seq = firstSeq + position;
          throw new PgBulkIngestError(
            'BATCH_MISSING',
            `Stream ${stream}, batch ${seq}: part ${index} of its rows is missing from Redis`,
            { stream, seq },
          );
        }
        yield new WirePart(readers[position] as WirePartReader, part);
      }
    }
  }

  /** Ends the connections of batches in flight: PostgreSQL rolls them back. */
  async abandon(): Promise<void> {
    await Promise.all([...this.#active].map((client) => client.end().catch(() => undefined)));
  }

  #parseHeader(stream: string, seq: number, header: BatchHeader): ParsedDefinition {
    const key = stringifyJson([header.version, header.tables, header.options] as Json);
    const known = this.#definitions.get(key);
    if (known) return known;
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
    const parsed = { tables, options: job.options };
    if (this.#definitions.size >= MAX_KNOWN_DEFINITIONS)
      this.#definitions.delete(this.#definitions.keys().next().value as string);
    this.#definitions.set(key, parsed);
    return parsed;
  }
}

function ignoreClientErrorEvent(): void {}

/** A part of a group's batch at `position` in the group. */
type GroupPartRef = PartRef & { readonly position: number };

/**
 * The parts of a group's batches, in order, cut into reads of about BYTES_PER_READ (a part's
 * size estimated from its batch's header), at least one part each.
 */
function* partReads(headers: readonly BatchHeader[]): Generator<GroupPartRef[]> {
  let read: GroupPartRef[] = [];
  let bytes = 0;
  for (const [position, batch] of headers.entries()) {
    const partBytes = batch.bytes / Math.max(1, batch.parts);
    for (let index = 0; index < batch.parts; index++) {
      if (read.length > 0 && (bytes + partBytes > BYTES_PER_READ || read.length >= MAX_PARTS_PER_READ)) {
        yield read;
        read = [];
        bytes = 0;
      }
      read.push({ batch, index, position });
      bytes += partBytes;
    }
  }
  if (read.length > 0) yield read;
}

/**
 * A quarantined row's stream, batch and number within that batch: a coalesced group numbers its
 * rows across its batches, each batch's rows in turn.
 */
function rejectedRowOrigin(
  stream: string,
  firstSeq: number,
  headers: readonly BatchHeader[],
): (row: RejectedRow) => RejectedRowOrigin {
  return (row) => {
    let rowNumber = row.batchRow;
    let i = 0;
    while (i < headers.length - 1 && rowNumber > (headers[i] as BatchHeader).rows) {
      rowNumber -= (headers[i] as BatchHeader).rows;
      i += 1;
    }
    return { stream, seq: firstSeq + i, rowNumber };
  };
}

/**
 * How many rows each batch of a group quarantined, by seq (0 for none): for a ledger row per
 * batch, in the group's transaction (`beforeCommit` gets the rejected rows) or after it
 * (`CommittedBatch.report.rejected`).
 */
export function rejectedRowsPerSeq(
  stream: string,
  firstSeq: number,
  headers: readonly BatchHeader[],
  rejected: readonly RejectedRow[],
): Map<number, number> {
  const counts = new Map(headers.map((_, i) => [firstSeq + i, 0]));
  const origin = rejectedRowOrigin(stream, firstSeq, headers);
  for (const row of rejected) {
    const seq = origin(row).seq as number;
    counts.set(seq, (counts.get(seq) ?? 0) + 1);
  }
  return counts;
}

/**
 * The rows the Producer's validation refused and let through (BadRows.QUARANTINE), numbered in
 * the group, with the validation's reason: quarantined unsent, so a row ends with the same
 * reason whichever way it came. Undefined when there is none (no lookup per row).
 */
function refusedRows(headers: readonly BatchHeader[]): ReadonlyMap<number, string> | undefined {
  const refused = new Map<number, string>();
  let before = 0;
  for (const header of headers) {
    for (const [row, reason] of header.refusedRows ?? []) refused.set(before + row, reason);
    before += header.rows;
  }
  return refused.size > 0 ? refused : undefined;
}

/**
 * The longest prefix of `headers` that can share one transaction: no gap (a header not read),
 * the same tables and options as the first (`Delete.BEFORE_FIRST_BATCH` only ever opens a group),
 * and within the limits. Always at least the first.
 */
export function coalescible(headers: readonly (BatchHeader | null)[], limits: CoalesceLimits): BatchHeader[] {
  const first = headers[0] as BatchHeader;
  const tables = JSON.stringify(first.tables);
  const options = JSON.stringify({ ...first.options, delete: Delete.OFF });
  const group = [first];
  let rows = first.rows;
  let bytes = first.bytes;
  for (const header of headers.slice(1)) {
    // A group never spans two epochs (their seqs are two numberings).
    if (header === null || header.epoch !== first.epoch || group.length >= limits.maxBatches) break;
    if (rows + header.rows > limits.maxRows || bytes + header.bytes > limits.maxBytes) break;
    if (JSON.stringify(header.options) !== options || JSON.stringify(header.tables) !== tables) break;
    group.push(header);
    rows += header.rows;
    bytes += header.bytes;
  }
  return group;
}

/** The last seq of `epoch` in Redis's numbering (a group never spans two epochs). */
function epochEnd(epochs: readonly Epoch[], epoch: string): number {
  const index = epochs.findIndex(([id]) => id === epoch);
  const following = epochs[index + 1];
  return following === undefined ? Number.POSITIVE_INFINITY : following[1];
}

function sameState(a: CommittedState, b: CommittedState): boolean {
  return a.seq === b.seq && a.epoch === b.epoch;
}
