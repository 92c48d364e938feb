/**
 * What a table in the database looks like, read from the catalogs, in a shape that can be
 * compared with a definition: column names in order with canonical types and nullability,
 * the primary key, and every other index as (unique, method, columns). Index names are not
 * part of the shape: they are ignored when deciding whether a table must be migrated.
 */
import type pg from 'pg';
import { quoteIdent } from './sql.ts';
import { createTableSql } from './table-ddl.ts';
import type { IngestTable } from './table-definition.ts';

export interface TableShape {
  readonly columns: readonly { name: string; type: string; notNull: boolean }[];
  readonly primaryKey: readonly string[];
  /** `unique|method|col1,col2` per non-primary index; `expression|…` for ones we never create. */
  readonly indexes: readonly string[];
}

/**
 * -- describe-table: the shape of one relation.
 * Inputs: $1 relation oid. Outputs: one row per column (attnum order), then indexes separately.
 * Expression and partial indexes are reported as such, so they always count as a difference.
 */
const COLUMNS_SQL = `
  SELECT a.attname::text AS name, format_type(a.atttypid, a.atttypmod) AS type, a.attnotnull AS "notNull"
    FROM pg_attribute a
   WHERE a.attrelid = $1 AND a.attnum > 0 AND NOT a.attisdropped
   ORDER BY a.attnum`;

const INDEXES_SQL = `
  SELECT i.indisprimary AS "primary", i.indisunique AS "unique", am.amname AS method,
         (i.indexprs IS NOT NULL OR i.indpred IS NOT NULL) AS "expression",
         ARRAY(SELECT a.attname::text FROM unnest(i.indkey::int2[]) WITH ORDINALITY AS k(attnum, ord)
                 JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum
                ORDER BY k.ord) AS columns
    FROM pg_index i
    JOIN pg_class ic ON ic.oid = i.indexrelid
    JOIN pg_am am ON am.oid = ic.relam
   WHERE i.indrelid = $1`;

export async function relationOid(
  client: pg.ClientBase,
  schema: string,
  name: string,
): Promise<number | null> {
  const { rows } = await client.query<{ oid: number }>(
    `SELECT c.oid FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
      WHERE n.nspname = $1 AND c.relname = $2 AND c.relkind IN ('r', 'p')`,
    [schema, name],
  );
  return rows[0]?.oid ?? null;
}

export async function describeRelation(client: pg.ClientBase, oid: number): Promise<TableShape> {
  const columns = (await client.query(COLUMNS_SQL, [oid])).rows;
  const indexRows = (
    await client.query<{
      primary: boolean;
      unique: boolean;
      method: string;
      expression: boolean;
      columns: string[];
    }>(INDEXES_SQL, [oid])
  ).rows;
  const primary = indexRows.find((i) => i.primary);
  return {
    columns,
    primaryKey: primary?.columns ?? [],
    indexes: indexRows
      .filter((i) => !i.primary)
      .map((i) => (i.expression ? `expression|${i.method}` : indexKey(i.unique, i.method, i.columns)))
      .sort(),
  };
}

export function indexKey(unique: boolean, method: string, columns: readonly string[]): string {
  return `${unique ? 'unique' : 'plain'}|${method}|${columns.map(quoteIdent).join(',')}`;
}

/**
 * The shape a definition has once PostgreSQL has canonicalised its types (`int` → `integer`,
 * `varchar(16)` → `character varying(16)`): create it as a temporary table and read it back.
 * The probe is dropped at once; it never outlives the transaction either way. The result only
 * depends on the definition, so it is remembered: a worker applying many batches of the same
 * table probes once, not per batch.
 */
export async function describeDefinition(client: pg.ClientBase, table: IngestTable): Promise<TableShape> {
  const key = JSON.stringify([table.columns, table.indexes]);
  const known = definitionShapes.get(key);
  if (known) return known;
  const probe = quoteIdent(`_pgbi_probe_${process.pid}`);
  await client.query(`${createTableSql(`pg_temp.${probe}`, table, { temporary: true })} ON COMMIT DROP`);
  const { rows } = await client.query<{ oid: number }>(`SELECT $1::regclass::oid AS oid`, [
    `pg_temp.${probe}`,
  ]);
  const shape = await describeRelation(client, rows[0]?.oid as number);
  await client.query(`DROP TABLE pg_temp.${probe}`);
  const result = {
    ...shape,
    indexes: table.indexes.map((i) => indexKey(i.unique, i.using, i.columns)).sort(),
  };
  if (definitionShapes.size >= MAX_REMEMBERED_SHAPES)
    definitionShapes.delete(definitionShapes.keys().next().value as string);
  definitionShapes.set(key, result);
  return result;
}

const MAX_REMEMBERED_SHAPES = 1000;
const definitionShapes = new Map<string, TableShape>();

/** The differences between two shapes, in words; empty when the live table needs no migration. */
export function shapeDifferences(live: TableShape, wanted: TableShape): string[] {
  const differences: string[] = [];
  const describeColumns = (s: TableShape) =>
    s.columns.map((c) => `${quoteIdent(c.name)} ${c.type}${c.notNull ? ' NOT NULL' : ''}`).join(', ');
  if (describeColumns(live) !== describeColumns(wanted)) {
    differences.push(`columns (${describeColumns(live)}) → (${describeColumns(wanted)})`);
  }
  if (live.primaryKey.join('\0') !== wanted.primaryKey.join('\0')) {
    differences.push(`primary key (${live.primaryKey.join(', ')}) → (${wanted.primaryKey.join(', ')})`);
  }
  if (live.indexes.join('\0') !== wanted.indexes.join('\0')) {
    differences.push(`indexes [${live.indexes.join('; ')}] → [${wanted.indexes.join('; ')}]`);
  }
  return differences;
}
