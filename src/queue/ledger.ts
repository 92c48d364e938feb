/**
 * The ledger, `bulk_ingest.batches`: one row per batch of every stream, written in the batch's
 * own transaction (or when it is skipped), so it never disagrees with the tables: what a row
 * says, and the SQL that writes, reads and prunes the rows (the table is created with the other
 * state tables, stream-state.ts).
 */
import type pg from 'pg';
import { parseJson, stringifyJson } from '../ingest/exact-json.ts';
import type { Json } from '../ingest/options.ts';
import { rowsIfTablesExist, STATE_SCHEMA } from './stream-state.ts';
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

/**
 * -- record-batches
 * Inside the batches' transaction: one ledger row per batch, all of a coalesced group in this one
 * statement. `records` is a JSON array of LedgerBatch (ledgerRecords). A (stream, seq) already
 * there can only be a seq numbered again in a new Redis epoch after Redis lost data (a batch is
 * never applied twice): the newer batch replaces the row; the gap itself is recorded in
 * stream_state and reported. The parameters' places are the caller's: a commit sends this
 * statement inside its own (committed-state.ts), one round trip for both.
 */
export const recordBatchesSql = (p: { stream: string; epoch: string; outcome: string; records: string }) => `
  INSERT INTO ${STATE_SCHEMA}.batches AS b
    (stream, seq, epoch, batch_id, table_schema, table_name, high_watermark, metadata, rows,
     rejected_rows, bytes, enqueued_at, committed_at, outcome)
  SELECT ${p.stream}, x.seq, ${p.epoch}, x.batch_id, x.table_schema, x.table_name, x.high_watermark, x.metadata,
         coalesce(x.rows, '{}'), coalesce(x.rejected_rows, 0), x.bytes, x.enqueued_at, clock_timestamp(), ${p.outcome}
  FROM jsonb_to_recordset(${p.records}::jsonb) AS x(seq bigint, batch_id text, table_schema text, table_name text,
       high_watermark jsonb, metadata jsonb, rows jsonb, rejected_rows integer, bytes bigint,
       enqueued_at timestamptz)
  ON CONFLICT (stream, seq) DO UPDATE
    SET epoch = EXCLUDED.epoch, batch_id = EXCLUDED.batch_id, table_schema = EXCLUDED.table_schema,
        table_name = EXCLUDED.table_name, high_watermark = EXCLUDED.high_watermark,
        metadata = EXCLUDED.metadata, rows = EXCLUDED.rows, rejected_rows = EXCLUDED.rejected_rows,
        bytes = EXCLUDED.bytes, enqueued_at = EXCLUDED.enqueued_at,
        committed_at = EXCLUDED.committed_at, outcome = EXCLUDED.outcome`;

const RECORD_BATCHES = recordBatchesSql({ stream: '$1', epoch: '$2', outcome: '$3', records: '$4' });

/** The `records` parameter of record-batches: the batches as a JSON array. */
export function ledgerRecords(batches: readonly LedgerBatch[]): string {
  return stringifyJson(
    batches.map((b) => ({
      seq: b.seq,
      batch_id: b.batchId,
      table_schema: b.table?.schema ?? null,
      table_name: b.table?.name ?? null,
      high_watermark: b.highWatermark,
      metadata: b.metadata,
      rows: b.rows,
      rejected_rows: b.rejectedRows,
      bytes: b.bytes,
      enqueued_at: b.enqueuedAt?.toISOString() ?? null,
    })),
  );
}

export async function recordBatches(
  client: pg.ClientBase,
  stream: string,
  epoch: string,
  outcome: LedgerEntry['outcome'],
  batches: readonly LedgerBatch[],
): Promise<void> {
  await client.query(RECORD_BATCHES, [stream, epoch, outcome, ledgerRecords(batches)]);
}

interface LedgerRow {
  stream: string;
  seq: string;
  epoch: string | null;
  batch_id: string | null;
  table_schema: string | null;
  table_name: string | null;
  /** jsonb as text, parsed exactly (node-postgres would round integers beyond 2^53). */
  high_watermark: string | null;
  metadata: string | null;
  rows: Record<string, number>;
  rejected_rows: number;
  bytes: string | null;
  enqueued_at: Date | null;
  committed_at: Date;
  outcome: LedgerEntry['outcome'];
}

function ledgerEntryOf(row: LedgerRow): LedgerEntry {
  return {
    stream: row.stream,
    seq: Number(row.seq),
    epoch: row.epoch,
    batchId: row.batch_id,
    table:
      row.table_schema === null || row.table_name === null
        ? null
        : { schema: row.table_schema, name: row.table_name },
    highWatermark: row.high_watermark === null ? null : (parseJson(row.high_watermark) as Json),
    metadata: row.metadata === null ? null : (parseJson(row.metadata) as Json),
    rows: row.rows,
    rejectedRows: row.rejected_rows,
    bytes: row.bytes === null ? null : Number(row.bytes),
    enqueuedAt: row.enqueued_at,
    committedAt: row.committed_at,
    outcome: row.outcome,
  };
}

/**
 * -- ledger-history
 * The stream's last `limit` ledger rows, newest first; `seq` given: that batch's row only.
 * Read-only (SELECT on bulk_ingest.batches), and empty before any worker created the table.
 */
const LEDGER_HISTORY = `
  SELECT stream, seq, epoch, batch_id, table_schema, table_name, high_watermark::text AS high_watermark,
         metadata::text AS metadata, rows, rejected_rows, bytes, enqueued_at, committed_at, outcome
  FROM ${STATE_SCHEMA}.batches
  WHERE stream = $1 AND ($2::bigint IS NULL OR seq = $2)
  ORDER BY seq DESC LIMIT $3`;

export async function ledgerHistory(
  db: pg.Pool | pg.ClientBase,
  stream: string,
  limit: number,
  seq: number | null = null,
): Promise<LedgerEntry[]> {
  const rows = await rowsIfTablesExist<LedgerRow>(db, LEDGER_HISTORY, [stream, seq, limit]);
  return rows.map(ledgerEntryOf);
}

/**
 * -- prune-ledger
 * One small step of retention: deletes up to $2 ledger rows committed more than $1 days ago, in a
 * statement of its own (never in a batch's transaction). SKIP LOCKED: workers pruning at once
 * take different rows rather than wait on each other. Returns how many it deleted.
 */
const PRUNE_LEDGER = `
  DELETE FROM ${STATE_SCHEMA}.batches WHERE ctid = ANY(ARRAY(
    SELECT ctid FROM ${STATE_SCHEMA}.batches
    WHERE committed_at < now() - make_interval(days => $1::int)
    LIMIT $2 FOR UPDATE SKIP LOCKED))`;

export async function pruneLedgerStep(pool: pg.Pool, retentionDays: number, rows: number): Promise<number> {
  return (await pool.query(PRUNE_LEDGER, [retentionDays, rows])).rowCount ?? 0;
}
