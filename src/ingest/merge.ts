/**
 * Upsert through a staging table. Rows are COPYed into a temporary table with their position
 * in the batch; then they are moved into the target, for each key the last row of the batch
 * winning. De-duplication (a sort of the whole batch) is paid only by batches that need it:
 *
 * -- merge-staged-rows (optimistic)
 * Inputs: the staging table (ordinal column + the table's columns), the target, its primary key.
 * Must run inside a transaction (the caller's: it uses a SAVEPOINT).
 * Effect: SAVEPOINT; INSERT ... SELECT straight from staging ... ON CONFLICT (pk) DO UPDATE;
 * RELEASE: sent as one query, one round trip. When no key repeats in the batch, that is the
 * whole merge, and it does exactly what the de-duplicating one would.
 * Fails with SQLSTATE 21000 ("ON CONFLICT DO UPDATE command cannot affect row a second time")
 * when a key repeats: PostgreSQL then refuses the whole statement, so nothing of it remains
 * after ROLLBACK TO SAVEPOINT, and the batch falls back to:
 *
 * -- merge-staged-rows (de-duplicating)
 * Effect: for each key, the last row of the batch wins (DISTINCT ON ... ORDER BY ordinal DESC),
 * then INSERT ... ON CONFLICT (pk) DO UPDATE.
 *
 * Both take ROW EXCLUSIVE only: readers are never blocked. Both fail with SQLSTATE 23xxx on
 * other constraint violations (the batch rolls back). A table whose every column is in the key
 * gets DO NOTHING, which never reports a repeated key: its duplicates are equal rows, so
 * keeping any of them is keeping the last.
 *
 * Why not detect duplicates while encoding: hashing every key in Node costs every batch CPU
 * time; the optimistic statement costs nothing extra when no key repeats, and a batch with
 * repeated keys pays the part of the statement done before the first repeat, plus the sort it
 * paid before.
 */
import type pg from 'pg';
import { asDatabaseError } from '../errors.ts';
import { columnList, qualifiedName, quoteIdent } from './sql.ts';
import { columnsSql } from './table-ddl.ts';
import type { IngestTable } from './table-definition.ts';

/** "ON CONFLICT DO UPDATE command cannot affect row a second time": a key repeated in the batch. */
const CARDINALITY_VIOLATION = '21000';

const SAVEPOINT = 'pgbi_merge';

export interface MergeResult {
  /** Rows inserted or updated. */
  readonly rows: number;
  /** True when a key repeated in the batch, so the rows went through the de-duplicating merge. */
  readonly deduplicated: boolean;
}

export function stagingTableName(index: number): string {
  return `_pgbi_stage_${index}`;
}

/** A name for the ordinal column that no column of the table has. */
export function ordinalColumnName(table: IngestTable): string {
  let name = '_pgbi_row';
  while (table.columns.some((c) => c.name === name)) name += '_';
  return name;
}

export async function createStagingTable(
  client: pg.ClientBase,
  table: IngestTable,
  name: string,
  ordinal: string,
) {
  // Same types and NOT NULLs as the target, so a bad value fails in COPY, where its line is known.
  await client.query(
    `CREATE TEMPORARY TABLE pg_temp.${quoteIdent(name)} (${quoteIdent(ordinal)} bigint NOT NULL, ${columnsSql(table).join(', ')}) ON COMMIT DROP`,
  );
}

export async function mergeStagedRows(
  client: pg.ClientBase,
  table: IngestTable,
  staging: string,
  ordinal: string,
  targetName: string,
  /** Only the staged rows whose ordinals are in this range (isolating bad rows: bad-rows.ts). */
  ordinals?: readonly [number, number],
): Promise<MergeResult> {
  const names = columnList(table.columns.map((c) => c.name));
  const only = ordinals ? `WHERE ${quoteIdent(ordinal)} BETWEEN ${ordinals[0]} AND ${ordinals[1]}` : '';
  const key = columnList(table.primaryKey);
  const updates = table.columns
    .map((c) => c.name)
    .filter((n) => !table.primaryKey.includes(n))
    .map((n) => `${quoteIdent(n)} = EXCLUDED.${quoteIdent(n)}`);
  const onConflict = `ON CONFLICT (${key}) ${updates.length > 0 ? `DO UPDATE SET ${updates.join(', ')}` : 'DO NOTHING'}`;
  const target = qualifiedName(table.schema, targetName);
  const source = `pg_temp.${quoteIdent(staging)}`;
  try {
    // One simple-protocol query of three statements: the savepoint costs no extra round trip.
    const results = (await client.query(
      `SAVEPOINT ${SAVEPOINT}; INSERT INTO ${target} (${names}) SELECT ${names} FROM ${source} ${only} ${onConflict}; RELEASE SAVEPOINT ${SAVEPOINT}`,
    )) as unknown as pg.QueryResult[];
    return { rows: results[1]?.rowCount ?? 0, deduplicated: false };
  } catch (error) {
    if (asDatabaseError(error)?.code !== CARDINALITY_VIOLATION) throw error;
  }
  const results = (await client.query(
    `ROLLBACK TO SAVEPOINT ${SAVEPOINT}; RELEASE SAVEPOINT ${SAVEPOINT};
     INSERT INTO ${target} (${names})
     SELECT DISTINCT ON (${key}) ${names} FROM ${source} ${only}
      ORDER BY ${key}, ${quoteIdent(ordinal)} DESC
     ${onConflict}`,
  )) as unknown as pg.QueryResult[];
  return { rows: results[2]?.rowCount ?? 0, deduplicated: true };
}
