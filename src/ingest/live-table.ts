/**
 * What a table in the database looks like, read from the catalogs, in a shape that can be
 * compared with a definition: column names in order with canonical types and nullability,
 * the primary key, and every other index as (unique, method, columns). Index names are not
 * part of the shape: they are ignored when deciding whether a table must be migrated.
 */
import type pg from 'pg';
import { InvariantError } from '../errors.ts';
import { quoteIdent } from './sql.ts';
import { createTableSql } from './table-ddl.ts';
import type { IndexDefinition, IngestTable } from './table-definition.ts';

export interface TableShape {
  readonly columns: readonly { name: string; type: string; notNull: boolean }[];
  readonly primaryKey: readonly string[];
  /**
   * `unique|method|col1,col2` per non-primary index; `expression|…` for ones we never create;
   * `invalid|…` for one a failed `CREATE INDEX CONCURRENTLY` left behind (never a match).
   */
  readonly indexes: readonly string[];
  /** The live table's non-primary indexes by name (empty for a definition): what dropping one takes. */
  readonly indexDetails: readonly LiveIndex[];
}

export interface LiveIndex {
  readonly key: string;
  readonly name: string;
  /** The constraint the index backs (`u` unique, `x` exclusion), which must be dropped instead. */
  readonly constraint: { readonly name: string; readonly type: string } | null;
  /** A foreign key of some table references the table through this index: it cannot go. */
  readonly referenced: boolean;
  /** As a definition would list it; null for an expression, partial or invalid index. */
  readonly definition: IndexDefinition | null;
}

/**
 * -- describe-table: the shape of one relation, in one round trip.
 * Inputs: a WHERE clause on `c` (pg_class) and its parameters. Outputs: one row per relation:
 * its oid, its comment (where the high watermark lives), its columns (attnum order) and its
 * indexes, as JSON. Expression and partial indexes are reported as such, so they always count
 * as a difference.
 */
const describeSql = (where: string) => `
  SELECT c.oid, obj_description(c.oid, 'pg_class') AS comment,
         (SELECT coalesce(json_agg(json_build_object('name', a.attname::text,
                                                     'type', format_type(a.atttypid, a.atttypmod),
                                                     'notNull', a.attnotnull) ORDER BY a.attnum), '[]')
            FROM pg_attribute a
           WHERE a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped) AS columns,
         (SELECT coalesce(json_agg(json_build_object(
                   'primary', i.indisprimary, 'unique', i.indisunique, 'method', am.amname,
                   'expression', (i.indexprs IS NOT NULL OR i.indpred IS NOT NULL),
                   'invalid', NOT (i.indisvalid AND i.indisready), 'name', ic.relname::text,
                   'constraint', (SELECT json_build_object('name', con.conname, 'type', con.contype)
                                    FROM pg_constraint con
                                   WHERE con.conindid = i.indexrelid AND con.conrelid = i.indrelid
                                     AND con.contype IN ('u', 'x', 'p')),
                   'referenced', EXISTS (SELECT 1 FROM pg_constraint f
                                          WHERE f.contype = 'f' AND f.conindid = i.indexrelid),
                   'columns', ARRAY(SELECT a.attname::text
                                      FROM unnest(i.indkey::int2[]) WITH ORDINALITY AS k(attnum, ord)
                                      JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum
                                     ORDER BY k.ord))), '[]')
            FROM pg_index i
            JOIN pg_class ic ON ic.oid = i.indexrelid
            JOIN pg_am am ON am.oid = ic.relam
           WHERE i.indrelid = c.oid) AS indexes
    FROM pg_class c
   WHERE ${where}`;

/**
 * The table `$1.$2` in pg_class `c`: an ordinary or partitioned table (a view or sequence of that
 * name is no table to load). Every lookup of a table by name uses this one.
 */
export const TABLE_BY_NAME =
  "c.relnamespace = (SELECT oid FROM pg_namespace WHERE nspname = $1) AND c.relname = $2 AND c.relkind IN ('r', 'p')";

const DESCRIBE_BY_OID_SQL = describeSql('c.oid = $1');
const DESCRIBE_BY_NAME_SQL = describeSql(TABLE_BY_NAME);

interface DescribedRow {
  oid: number;
  comment: string | null;
  columns: TableShape['columns'];
  indexes: {
    primary: boolean;
    unique: boolean;
    method: string;
    expression: boolean;
    invalid: boolean;
    name: string;
    constraint: { name: string; type: string } | null;
    referenced: boolean;
    columns: string[];
  }[];
}

/** A live table: its oid, its shape and its COMMENT (null if it has none). */
export interface LiveTable {
  readonly oid: number;
  readonly shape: TableShape;
  readonly comment: string | null;
}

/** The oid of the table `schema.name`, null if there is none: describeTable's lookup, without the shape. */
export async function relationOid(
  client: pg.ClientBase,
  schema: string,
  name: string,
): Promise<number | null> {
  const { rows } = await client.query<{ oid: number }>(
    `SELECT c.oid FROM pg_class c WHERE ${TABLE_BY_NAME}`,
    [schema, name],
  );
  return rows[0]?.oid ?? null;
}

/** The table `schema.name` (an ordinary or partitioned table), read in one query; null if there is none. */
export async function describeTable(
  client: pg.ClientBase,
  schema: string,
  name: string,
): Promise<LiveTable | null> {
  const row = (await client.query<DescribedRow>(DESCRIBE_BY_NAME_SQL, [schema, name])).rows[0];
  return row === undefined ? null : { oid: row.oid, shape: shapeOf(row), comment: row.comment };
}

export async function describeRelation(client: pg.ClientBase, oid: number): Promise<TableShape> {
  const row = (await client.query<DescribedRow>(DESCRIBE_BY_OID_SQL, [oid])).rows[0];
  if (row === undefined) throw new InvariantError(`Relation ${oid} vanished while being described`);
  return shapeOf(row);
}

function shapeOf({ columns, indexes: indexRows }: DescribedRow): TableShape {
  const primary = indexRows.find((i) => i.primary && !i.invalid);
  const indexDetails = indexRows
    .filter((i) => i !== primary)
    .map((i) => {
      const key = i.expression ? `expression|${i.method}` : indexKey(i.unique, i.method, i.columns);
      const plain = !i.invalid && !i.expression;
      return {
        key: i.invalid ? `invalid|${i.name}` : key,
        name: i.name,
        constraint: i.constraint,
        referenced: i.referenced,
        definition: plain
          ? { columns: i.columns, using: i.method as IndexDefinition['using'], unique: i.unique }
          : null,
      };
    })
    .sort((x, y) => (x.key < y.key ? -1 : x.key > y.key ? 1 : 0));
  return {
    columns,
    primaryKey: primary?.columns ?? [],
    indexes: indexDetails.map((i) => i.key),
    indexDetails,
  };
}

export function indexKey(unique: boolean, method: string, columns: readonly string[]): string {
  return `${unique ? 'unique' : 'plain'}|${method}|${columns.map(quoteIdent).join(',')}`;
}

/** Whether the caller's client is inside a transaction ('open') or not ('none'). */
export type Transaction = 'open' | 'none';

/**
 * The shape a definition has once PostgreSQL has canonicalised its types (`int` → `integer`,
 * `varchar(16)` → `character varying(16)`): create it as a temporary table and read it back.
 * The probe is dropped at once; it never outlives the transaction either way. The result only
 * depends on the definition, so it is remembered: a worker applying many batches of the same
 * table probes once, not per batch.
 */
export async function describeDefinition(
  client: pg.ClientBase,
  table: IngestTable,
  transaction: Transaction,
): Promise<TableShape> {
  const key = JSON.stringify([table.columns, table.indexes]);
  const known = definitionShapes.get(key);
  if (known) return known;
  const probe = quoteIdent(`_pgbi_probe_${process.pid}`);
  // Outside a transaction (a plan made before the batch's), the probe gets one of its own.
  const own = transaction === 'none';
  if (own) await client.query('BEGIN');
  let shape: TableShape;
  try {
    await client.query(`${createTableSql(`pg_temp.${probe}`, table, { temporary: true })} ON COMMIT DROP`);
    const { rows } = await client.query<{ oid: number }>(`SELECT $1::regclass::oid AS oid`, [
      `pg_temp.${probe}`,
    ]);
    shape = await describeRelation(client, rows[0]?.oid as number);
    await client.query(`DROP TABLE pg_temp.${probe}`);
  } finally {
    if (own) await client.query('ROLLBACK');
  }
  const result = {
    ...shape,
    indexes: table.indexes.map((i) => indexKey(i.unique, i.using, i.columns)).sort(),
    indexDetails: [],
  };
  if (definitionShapes.size >= MAX_REMEMBERED_SHAPES)
    definitionShapes.delete(definitionShapes.keys().next().value as string);
  definitionShapes.set(key, result);
  return result;
}

const MAX_REMEMBERED_SHAPES = 1000;
const definitionShapes = new Map<string, TableShape>();
