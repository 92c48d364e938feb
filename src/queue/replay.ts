/**
 * Quarantined rows, from the queue's side: listing them (`pg-bulk-ingest rejected`), replaying
 * them (`pg-bulk-ingest replay`) as a new batch at the end of their stream, and marking them
 * replayed in that batch's own transaction, so a replayed row is in its table exactly once.
 *
 * A replay batch names the ids it carries in its metadata (REPLAY_METADATA_KEY); the worker sets
 * their `replayed_at` just before COMMIT. A row refused again is quarantined again, with a new id.
 */
import type pg from 'pg';
import { BatchError, PgBulkIngestError } from '../errors.ts';
import { describeTable } from '../ingest/live-table.ts';
import { BadRows, type Json, Upsert } from '../ingest/options.ts';
import { REJECTED_ROWS_TABLE } from '../ingest/rejected-rows.ts';
import type { TableDefinitionInput } from '../ingest/table-definition.ts';
import { BATCH_FORMAT_VERSION, type BatchJobInput, tableKey } from './batch-contract.ts';
import type { BatchHeader } from './stream-store.ts';

/** The metadata key of a replay batch: the ids of the rejected rows it carries. */
export const REPLAY_METADATA_KEY = 'replayOfRejectedRows';

/** A row of bulk_ingest.rejected_rows. */
export interface RejectedRowRecord {
  readonly id: number;
  readonly stream: string;
  readonly seq: number | null;
  readonly tableSchema: string;
  readonly tableName: string;
  readonly rowNumber: number;
  readonly row: readonly unknown[];
  readonly sqlState: string | null;
  readonly message: string;
  readonly rejectedAt: Date;
  readonly replayedAt: Date | null;
}

/** Sets replayed_at of the rows the group's replay batches carry, in the group's transaction. */
export async function markReplayed(client: pg.ClientBase, headers: readonly BatchHeader[]): Promise<void> {
  const ids = headers.flatMap((h) => replayIdsOf(h.metadata));
  if (ids.length === 0) return;
  const { rows } = await client.query<{ id: string }>(
    `UPDATE ${REJECTED_ROWS_TABLE} SET replayed_at = now() WHERE id = ANY($1::bigint[]) AND replayed_at IS NULL
     RETURNING id`,
    [ids],
  );
  if (rows.length === ids.length) return;
  // Two replays of the same rows were enqueued before either committed: the later one would
  // write them twice. It fails (and is parked) instead, saying so.
  const marked = new Set(rows.map((r) => Number(r.id)));
  const again = ids.filter((id) => !marked.has(id));
  throw new BatchError(
    `This replay batch carries rejected rows ${again.join(', ')}, which another replay already committed (or which are gone): skip it`,
    {},
    { retryable: false },
  );
}

function replayIdsOf(metadata: unknown): number[] {
  if (metadata === null || typeof metadata !== 'object' || Array.isArray(metadata)) return [];
  const ids = (metadata as Record<string, unknown>)[REPLAY_METADATA_KEY];
  return Array.isArray(ids) ? ids.filter((id): id is number => Number.isSafeInteger(id)) : [];
}

/** Rejected rows, oldest first: of one stream, or of all. Read-only. */
export async function listRejectedRows(
  client: pg.ClientBase,
  stream?: string,
  ids?: readonly number[],
): Promise<RejectedRowRecord[]> {
  const exists = await client.query<{ t: string | null }>(
    `SELECT to_regclass('${REJECTED_ROWS_TABLE}') AS t`,
  );
  if (!exists.rows[0]?.t) return [];
  const { rows } = await client.query(
    `SELECT id, stream, seq, table_schema, table_name, row_number, "row", sqlstate, message, rejected_at, replayed_at
       FROM ${REJECTED_ROWS_TABLE}
      WHERE ($1::text IS NULL OR stream = $1) AND ($2::bigint[] IS NULL OR id = ANY($2))
      ORDER BY id`,
    [stream ?? null, ids ? [...ids] : null],
  );
  return rows.map((r) => ({
    id: Number(r.id),
    stream: r.stream,
    seq: r.seq === null ? null : Number(r.seq),
    tableSchema: r.table_schema,
    tableName: r.table_name,
    rowNumber: Number(r.row_number),
    row: r.row,
    sqlState: r.sqlstate,
    message: r.message,
    rejectedAt: r.rejected_at,
    replayedAt: r.replayed_at,
  }));
}

/**
 * The batch that replays `rows` (as they are in the table now: an operator may have fixed a
 * value with UPDATE): the live tables' definitions (the stream's past batches may be gone from
 * Redis; the live table is what the rows must fit now), the stream's committed high watermark
 * (a replay does not move it), BadRows.QUARANTINE, and the ids in its metadata. Upsert.OFF by
 * default: the batch that refused a row may have been a plain insert, and a replay must not
 * overwrite a row already in the table unless asked to (a duplicate is quarantined again).
 */
export async function replayBatch(
  client: pg.ClientBase,
  stream: string,
  rows: readonly RejectedRowRecord[],
  highWatermark: Json | null,
  upsert: Upsert = Upsert.OFF,
): Promise<BatchJobInput> {
  const tables: TableDefinitionInput[] = [];
  const keys = new Map<string, string>();
  for (const row of rows) {
    const id = `${row.tableSchema}\u0000${row.tableName}`;
    if (keys.has(id)) continue;
    tables.push(await liveDefinition(client, row.tableSchema, row.tableName));
    keys.set(id, tableKey({ schema: row.tableSchema, name: row.tableName }));
  }
  return {
    version: BATCH_FORMAT_VERSION,
    stream,
    tables,
    highWatermark,
    metadata: { [REPLAY_METADATA_KEY]: rows.map((r) => r.id) },
    rows: rows.map((r) => [keys.get(`${r.tableSchema}\u0000${r.tableName}`) as string, [...r.row]]),
    options: { badRows: BadRows.QUARANTINE, upsert },
  };
}

async function liveDefinition(
  client: pg.ClientBase,
  schema: string,
  name: string,
): Promise<TableDefinitionInput> {
  const live = await describeTable(client, schema, name);
  if (live === null)
    throw new PgBulkIngestError(
      'INVALID_OPTIONS',
      `Cannot replay rows of ${schema}.${name}: the table is gone`,
      {
        table: `${schema}.${name}`,
      },
    );
  const { shape } = live;
  return {
    schema,
    name,
    columns: shape.columns.map((c) => ({
      name: c.name,
      type: c.type,
      nullable: !c.notNull,
      primaryKey: shape.primaryKey.includes(c.name),
    })),
    indexes: shape.indexDetails.flatMap((i) =>
      i.definition ? [{ ...i.definition, columns: [...i.definition.columns] }] : [],
    ),
  };
}
