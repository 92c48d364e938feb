/**
 * Helpers for the ingest() integration tests: a throw-away schema per test, batches from plain
 * arrays, and read-backs from the catalogs (oid, comment, shape) to check what ingest() did.
 */
import type pg from 'pg';
import type { Batch, Batches, Json, Row } from '../../src/index.ts';
import { defineTable, type IngestTable, ingest, type TableDefinitionInput } from '../../src/index.ts';
import { qualifiedName } from '../../src/ingest/sql.ts';
import { connect, dropSchema, uniqueName } from './pg.ts';

export interface SchemaFixture {
  /** A schema name no other test uses; ingest() creates it. */
  readonly schema: string;
  /** The connection given to ingest(). */
  readonly client: pg.Client;
  /** A second session, to look at what other sessions see. Its lock_timeout is 2 s: blocked, it fails rather than hangs. */
  readonly observer: pg.Client;
}

/** Runs `fn` with a fresh schema name and two sessions; drops the schema and ends both afterwards. */
export async function withSchema(prefix: string, fn: (f: SchemaFixture) => Promise<void>): Promise<void> {
  const schema = uniqueName(prefix);
  const client = await connect();
  const observer = await connect();
  try {
    await observer.query("SET lock_timeout = '2s'");
    await fn({ schema, client, observer });
  } finally {
    await Promise.allSettled([client.end(), observer.end()]);
    await dropSchema(schema);
  }
}

/** A `batches` function yielding these batches, whatever high watermark it is called with. */
export function batchesOf(...batches: Batch[]): Batches {
  return () => batches;
}

/** `[table, values]` rows for one table. */
export function rowsOf(table: IngestTable, ...values: unknown[][]): Row[] {
  return values.map((v) => [table, v] as const);
}

export async function tableOid(client: pg.ClientBase, schema: string, name: string): Promise<number | null> {
  const { rows } = await client.query<{ oid: number | null }>('SELECT to_regclass($1)::oid AS oid', [
    qualifiedName(schema, name),
  ]);
  return rows[0]?.oid ?? null;
}

export async function tableComment(
  client: pg.ClientBase,
  schema: string,
  name: string,
): Promise<string | null> {
  const { rows } = await client.query<{ comment: string | null }>(
    `SELECT obj_description(to_regclass($1), 'pg_class') AS comment`,
    [qualifiedName(schema, name)],
  );
  return rows[0]?.comment ?? null;
}

/** The high watermark as stored in the table's comment, or `undefined` when there is none. */
export async function storedHighWatermark(
  client: pg.ClientBase,
  schema: string,
  name: string,
): Promise<Json | undefined> {
  const comment = await tableComment(client, schema, name);
  return comment === null ? undefined : JSON.parse(comment)['pg-bulk-ingest']?.['high-watermark'];
}

/** Every row of a table, ordered by its first column. */
export async function selectAll(
  client: pg.ClientBase,
  schema: string,
  name: string,
): Promise<Record<string, unknown>[]> {
  return (await client.query(`SELECT * FROM ${qualifiedName(schema, name)} ORDER BY 1`)).rows;
}

export interface Shape {
  /** `name type [NOT NULL]`, in column order. */
  readonly columns: string[];
  readonly primaryKey: string[];
  /** `[unique ]method(col, ...)` for every index but the primary key's, sorted. */
  readonly indexes: string[];
}

/** What the table looks like in the catalogs. */
export async function tableShape(client: pg.ClientBase, schema: string, name: string): Promise<Shape> {
  const relation = qualifiedName(schema, name);
  const columns = await client.query<{ c: string }>(
    `SELECT attname || ' ' || format_type(atttypid, atttypmod) || CASE WHEN attnotnull THEN ' NOT NULL' ELSE '' END AS c
       FROM pg_attribute WHERE attrelid = to_regclass($1) AND attnum > 0 AND NOT attisdropped ORDER BY attnum`,
    [relation],
  );
  const indexes = await client.query<{ primary: boolean; i: string; columns: string[] }>(
    `SELECT x.indisprimary AS primary,
            CASE WHEN x.indisunique THEN 'unique ' ELSE '' END || am.amname AS i,
            ARRAY(SELECT a.attname::text FROM unnest(x.indkey::int2[]) WITH ORDINALITY AS k(n, o)
                    JOIN pg_attribute a ON a.attrelid = x.indrelid AND a.attnum = k.n ORDER BY k.o) AS columns
       FROM pg_index x JOIN pg_class ic ON ic.oid = x.indexrelid JOIN pg_am am ON am.oid = ic.relam
      WHERE x.indrelid = to_regclass($1)`,
    [relation],
  );
  return {
    columns: columns.rows.map((r) => r.c),
    primaryKey: indexes.rows.find((r) => r.primary)?.columns ?? [],
    indexes: indexes.rows
      .filter((r) => !r.primary)
      .map((r) => `${r.i}(${r.columns.join(', ')})`)
      .sort(),
  };
}

/** The COPY `pid` is running now, as pg_stat_progress_copy shows it, or undefined. */
export async function copyInProgress(
  observer: pg.ClientBase,
  pid: number,
): Promise<{ relid: number; command: string; type: string; tuples: number } | undefined> {
  const { rows } = await observer.query(
    `SELECT relid::int AS relid, command, type, tuples_processed::int AS tuples FROM pg_stat_progress_copy WHERE pid = $1`,
    [pid],
  );
  return rows[0];
}

export async function backendPid(client: pg.ClientBase): Promise<number> {
  return (await client.query<{ pid: number }>('SELECT pg_backend_pid() AS pid')).rows[0]?.pid as number;
}

/** Runs `fn` and returns what it rejected with; fails if it resolved. */
export async function rejection(fn: () => Promise<unknown>): Promise<unknown> {
  try {
    await fn();
  } catch (error) {
    return error;
  }
  throw new Error('Expected a rejection, but it resolved');
}

export type Columns = TableDefinitionInput['columns'];
export type Indexes = TableDefinitionInput['indexes'];

export interface Migration {
  readonly from: { columns: Columns; indexes?: Indexes; rows: unknown[][] };
  readonly to: { columns: Columns; indexes?: Indexes; rows: unknown[][] };
}

export interface Migrated {
  readonly shape: Shape;
  readonly rows: Record<string, unknown>[];
  readonly migrated: boolean;
}

/** Ingests `from` with its rows, then `to` with its rows in one batch; returns what the table became. */
export async function migrate(
  f: { schema: string; client: pg.Client; observer: pg.Client },
  m: Migration,
): Promise<Migrated> {
  const define = (d: Migration['from']) =>
    defineTable({ schema: f.schema, name: 't', columns: d.columns, indexes: d.indexes ?? [] });
  const from = define(m.from);
  await ingest(f.client, [from], batchesOf(['1', null, rowsOf(from, ...m.from.rows)]));
  const oid = await tableOid(f.observer, f.schema, 't');
  const to = define(m.to);
  await ingest(f.client, [to], batchesOf(['2', null, rowsOf(to, ...m.to.rows)]));
  return {
    shape: await tableShape(f.observer, f.schema, 't'),
    rows: await selectAll(f.observer, f.schema, 't'),
    migrated: (await tableOid(f.observer, f.schema, 't')) !== oid,
  };
}
