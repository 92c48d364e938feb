/**
 * Upsert through a staging table. Rows are COPYed into a temporary table with their position
 * in the batch; then one statement moves them into the target:
 *
 * -- merge-staged-rows
 * Inputs: the staging table (ordinal column + the table's columns), the target, its primary key.
 * Effect: for each key, the last row of the batch wins (DISTINCT ON ... ORDER BY ordinal DESC),
 * then INSERT ... ON CONFLICT (pk) DO UPDATE. Takes ROW EXCLUSIVE only: readers are never blocked.
 * Fails with SQLSTATE 23xxx on other constraint violations (the batch rolls back).
 */
import type pg from 'pg';
import { columnList, qualifiedName, quoteIdent } from './sql.ts';
import type { IngestTable } from './table-definition.ts';

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
  const columns = table.columns.map((c) => `${quoteIdent(c.name)} ${c.type}${c.nullable ? '' : ' NOT NULL'}`);
  await client.query(
    `CREATE TEMPORARY TABLE pg_temp.${quoteIdent(name)} (${quoteIdent(ordinal)} bigint NOT NULL, ${columns.join(', ')}) ON COMMIT DROP`,
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
): Promise<number> {
  const names = table.columns.map((c) => c.name);
  const key = columnList(table.primaryKey);
  const updates = names
    .filter((n) => !table.primaryKey.includes(n))
    .map((n) => `${quoteIdent(n)} = EXCLUDED.${quoteIdent(n)}`);
  const onConflict = updates.length > 0 ? `DO UPDATE SET ${updates.join(', ')}` : 'DO NOTHING';
  const result = await client.query(
    `INSERT INTO ${qualifiedName(table.schema, targetName)} (${columnList(names)})
     SELECT DISTINCT ON (${key}) ${columnList(names)} FROM pg_temp.${quoteIdent(staging)}
      ${ordinals ? `WHERE ${quoteIdent(ordinal)} BETWEEN ${ordinals[0]} AND ${ordinals[1]}` : ''}
      ORDER BY ${key}, ${quoteIdent(ordinal)} DESC
     ON CONFLICT (${key}) ${onConflict}`,
  );
  return result.rowCount ?? 0;
}
