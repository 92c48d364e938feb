/**
 * `bulk_ingest.rejected_rows`: where `BadRows.QUARANTINE` puts the rows a batch could not write,
 * in the batch's own transaction, so a row is either in its table or here, never both, never
 * neither (docs/operations.md describes the table column by column).
 */
import type pg from 'pg';
import type { Json } from './options.ts';

/** The schema of the queue's state tables too; not `pg_...`, a prefix PostgreSQL reserves. */
export const REJECTED_ROWS_TABLE = 'bulk_ingest.rejected_rows';

/** A row a batch refused, as the core found it. */
export interface RejectedRow {
  readonly tableSchema: string;
  readonly tableName: string;
  /** 1-based position of the row in its batch (every row of the batch counts, whatever its table). */
  readonly batchRow: number;
  /** The row's values in the queue's wire format (docs/batch-format.md). */
  readonly values: readonly unknown[];
  /** PostgreSQL's SQLSTATE; null when the row was refused before PostgreSQL saw it (a value that cannot be encoded for its column). */
  readonly sqlState: string | null;
  readonly message: string;
}

/** Where a rejected row is recorded as coming from: `ingest()` says its first table and no seq; the queue its stream and batch. */
export interface RejectedRowOrigin {
  readonly stream: string;
  readonly seq: number | null;
  /** 1-based in the batch `seq` (a coalesced group numbers its rows per batch). */
  readonly rowNumber: number;
  /** Replaces the message, e.g. with the reason the queue's validation gives for the value. */
  readonly message?: string;
}

/**
 * -- create-rejected-rows
 * Inputs: none. Effect: creates schema bulk_ingest and table rejected_rows if missing. Runs in
 * the batch's transaction, only when a batch has a rejected row and the table is not there yet;
 * serialised by an advisory lock (the key the queue's state tables use), as concurrent
 * CREATE TABLE IF NOT EXISTS would race into a unique violation in pg_type.
 */
const CREATE_REJECTED_ROWS = `
  CREATE SCHEMA IF NOT EXISTS bulk_ingest;
  CREATE TABLE IF NOT EXISTS ${REJECTED_ROWS_TABLE} (
    id bigserial PRIMARY KEY,
    stream text NOT NULL,
    seq bigint,
    table_schema text NOT NULL,
    table_name text NOT NULL,
    row_number bigint NOT NULL,
    "row" jsonb NOT NULL,
    sqlstate text,
    message text NOT NULL,
    rejected_at timestamptz NOT NULL DEFAULT now(),
    replayed_at timestamptz
  );
  CREATE INDEX IF NOT EXISTS rejected_rows_stream_idx ON ${REJECTED_ROWS_TABLE} (stream, id);`;

export async function ensureRejectedRowsTable(client: pg.ClientBase): Promise<void> {
  const found = await client.query<{ t: string | null }>(`SELECT to_regclass('${REJECTED_ROWS_TABLE}') AS t`);
  if (found.rows[0]?.t) return;
  await client.query(`SELECT pg_advisory_xact_lock(hashtextextended('pg-bulk-ingest state tables', 0))`);
  await client.query(CREATE_REJECTED_ROWS);
}

/**
 * -- insert-rejected-rows
 * Inputs: one JSON array of rejected rows. Effect: one row each in rejected_rows, in the
 * batch's transaction. Returns nothing; the ids are new (a replayed row refused again gets a new one).
 */
export async function insertRejectedRows(
  client: pg.ClientBase,
  rows: readonly RejectedRow[],
  originOf: (row: RejectedRow) => RejectedRowOrigin,
): Promise<void> {
  if (rows.length === 0) return;
  await ensureRejectedRowsTable(client);
  const records = rows.map((row) => {
    const origin = originOf(row);
    return {
      stream: origin.stream,
      seq: origin.seq,
      table_schema: row.tableSchema,
      table_name: row.tableName,
      row_number: origin.rowNumber,
      row: row.values as Json,
      sqlstate: row.sqlState,
      message: origin.message ?? row.message,
    };
  });
  await client.query(
    `INSERT INTO ${REJECTED_ROWS_TABLE} (stream, seq, table_schema, table_name, row_number, "row", sqlstate, message)
     SELECT r.stream, r.seq, r.table_schema, r.table_name, r.row_number, r."row", r.sqlstate, r.message
       FROM jsonb_to_recordset($1::jsonb) AS r(stream text, seq bigint, table_schema text, table_name text,
            row_number bigint, "row" jsonb, sqlstate text, message text)
      ORDER BY r.seq, r.row_number`,
    [JSON.stringify(records, (_k, v) => (typeof v === 'bigint' ? v.toString() : v))],
  );
}
