/**
 * The ledger, `bulk_ingest.batches`: one row per batch of every stream, written in the batch's
 * own transaction (or when it is skipped), so it never disagrees with the tables. This file
 * holds what a row says; its SQL lives with the rest of bulk_ingest's, in stream-state.ts.
 */
import type { Json } from '../ingest/options.ts';
import type { BatchHeader } from './stream-store.ts';

/** Rows `history` shows unless told otherwise. */
export const DEFAULT_HISTORY_LIMIT = 20;

/** What a worker (or `skip`) writes about one batch: the row but for stream, epoch, time and outcome. */
export interface LedgerBatch {
  readonly seq: number;
  readonly batchId: string | null;
  /** The batch's first table, whose comment holds the stream's high watermark (null if unknown). */
  readonly table: { readonly schema: string; readonly name: string } | null;
  /** The high watermark the batch carried (a skipped batch's was never committed). */
  readonly highWatermark: Json | null;
  readonly metadata: Json | null;
  /**
   * Rows the batch carried per table (`schema.table`), each table of the batch listed, 0
   * included: counted by the worker as it reads the batch's parts, so each batch of a coalesced
   * transaction has its own counts. Rows sent, not rows changed: an upsert's replaced row counts.
   * Empty for a skipped batch (nothing was written).
   */
  readonly rows: Readonly<Record<string, number>>;
  /** Rows refused and quarantined in the batch's transaction (bulk_ingest.rejected_rows); 0 without quarantine. */
  readonly rejectedRows: number;
  /** The batch's size on the wire, in bytes. */
  readonly bytes: number | null;
  readonly enqueuedAt: Date | null;
}

/** One batch as the ledger records it (`StreamAdmin.history()`, `pg-bulk-ingest history`). */
export interface LedgerEntry extends LedgerBatch {
  readonly stream: string;
  /**
   * The Redis epoch the seq was numbered in. After Redis lost data a seq can be numbered again
   * in a new epoch: the newer batch's row replaces the older one (the gap is reported in
   * `status` and bulk_ingest.stream_state).
   */
  readonly epoch: string | null;
  /** When it was committed (or skipped). */
  readonly committedAt: Date;
  readonly outcome: 'committed' | 'skipped';
}

/** The ledger row of batch `seq` from its header (null: the header is gone) and its row counts. */
export function ledgerBatchOf(
  seq: number,
  header: BatchHeader | null,
  rows: Readonly<Record<string, number>>,
  rejectedRows = 0,
): LedgerBatch {
  const first = header?.tables[0];
  return {
    seq,
    batchId: header?.batchId ?? null,
    table: first ? { schema: first.schema, name: first.name } : null,
    highWatermark: header?.highWatermark ?? null,
    metadata: header?.metadata ?? null,
    rows,
    rejectedRows,
    bytes: header?.bytes ?? null,
    enqueuedAt: header ? new Date(header.enqueuedAt) : null,
  };
}
