/**
 * At the first batch of an ingest, decides for each table where that batch's rows go, and does
 * the DDL, all inside the batch's transaction so nothing of it is visible before the commit:
 *
 * - missing: the table (and its schema) is created; its indexes are built after the load;
 * - `Delete.BEFORE_FIRST_BATCH`: an empty replacement table is created, swapped in at the end;
 * - differs from the definition: a replacement is created, the rows of the columns it keeps
 *   are copied in (the live table SHARE-locked: readable, not writable), swapped in at the end.
 *   Differences PostgreSQL applies in place are found here first: the batch's transaction then
 *   rolls back (InPlaceFirst), they are applied in a short transaction of their own
 *   (migrate/in-place-migration.ts), and the batch starts again; any found after that step are
 *   rebuilt, which is always correct;
 * - otherwise the live table takes the rows.
 *
 * `schemaChanges` decides what the table must become: the definition (APPLY), the definition
 * merged into the live shape (ADDITIVE), or nothing at all (FREEZE: a difference fails the batch).
 */
import type pg from 'pg';
import { describeTable } from './live-table.ts';
import { describeDifferences, planMigration, type TableMigration } from './migrate/migration-plan.ts';
import { type Delete, Delete as DeleteMode, SchemaChanges } from './options.ts';
import { columnList, qualifiedName, quoteIdent, temporaryRelationName } from './sql.ts';
import { createIndexesSql, createTableSql } from './table-ddl.ts';
import type { IngestTable } from './table-definition.ts';

export interface PreparedTable {
  /** The batch's definition: its rows are written with these columns. */
  readonly table: IngestTable;
  /** What `relationName` is built from when this batch creates it (differs from `table` under ADDITIVE). */
  readonly builtFrom: IngestTable;
  /** The relation (unqualified name, in the table's schema) this batch writes to. */
  readonly relationName: string;
  /** Indexes must be built on `relationName` before commit: it was created in this batch. */
  readonly buildIndexes: boolean;
  /** `relationName` replaces the live table at the end of the batch. */
  readonly replacesLive: boolean;
  /** The rebuild, when the table differs from what it must become. */
  readonly migration?: TableMigration;
  /**
   * The live table's COMMENT as the batch found it, before any change (null: no table or no
   * comment), read with its shape in one query; undefined when the table was not described.
   */
  readonly liveComment?: string | null;
}

/**
 * Thrown by prepareTable, told `inPlaceFirst`, for a table whose differences PostgreSQL applies
 * in place: the batch's transaction rolls back (before any row), the in-place step runs, and the
 * batch starts again (ingest-batch.ts). Only batches that change a table pay for the second
 * start (and a batch of several tables, one rebuilt before another found to change in place,
 * for its rebuild twice); the others no longer pay for an in-place check before their
 * transaction.
 */
export class InPlaceFirst extends Error {
  constructor(readonly table: IngestTable) {
    super(`${qualifiedName(table.schema, table.name)} is to be altered in place before the batch`);
  }
}

export async function prepareTable(
  client: pg.ClientBase,
  table: IngestTable,
  deleteMode: Delete,
  schemaChanges: SchemaChanges = SchemaChanges.APPLY,
  inPlaceFirst = false,
): Promise<PreparedTable> {
  // One query when the table exists (most batches): its shape, which also says its schema exists.
  let live = await describeTable(client, table.schema, table.name);
  if (live === null) {
    await ensureSchema(client, table.schema);
    // As for the schema: another session may be creating the table right now.
    await lockName(client, 'new table', table.schema, table.name);
    live = await describeTable(client, table.schema, table.name);
  }
  const asIs = {
    table,
    builtFrom: table,
    relationName: table.name,
    replacesLive: false,
    liveComment: live?.comment ?? null,
  };
  if (live === null) {
    await client.query(createTableSql(qualifiedName(table.schema, table.name), table));
    return { ...asIs, buildIndexes: true };
  }
  const { oid } = live;
  const plan = await planMigration(client, table, live, schemaChanges, 'open');
  const deleting = deleteMode === DeleteMode.BEFORE_FIRST_BATCH;
  if (plan.path === 'none' && !deleting) return { ...asIs, buildIndexes: false };
  if (plan.path === 'in-place' && inPlaceFirst && !deleting) throw new InPlaceFirst(table);
  const builtFrom = plan.target.table;
  const replacement = temporaryRelationName('new');
  await client.query(createTableSql(qualifiedName(table.schema, replacement), builtFrom));
  if (!deleting) await copyKeptColumns(client, builtFrom, oid, replacement);
  const migration: TableMigration | undefined =
    plan.path === 'none'
      ? undefined
      : {
          table: `${table.schema}.${table.name}`,
          path: 'rebuild',
          differences: describeDifferences(plan),
          rebuildReasons:
            plan.path === 'rebuild'
              ? plan.rebuildReasons
              : [
                  deleting
                    ? 'Delete.BEFORE_FIRST_BATCH replaces the table'
                    : 'changed since the in-place step',
                ],
          lockWaitMs: 0,
          lockAttempts: 0,
        };
  return {
    table,
    builtFrom,
    relationName: replacement,
    buildIndexes: true,
    replacesLive: true,
    liveComment: live.comment,
    ...(migration ? { migration } : {}),
  };
}

async function ensureSchema(client: pg.ClientBase, schema: string): Promise<void> {
  // Check first: CREATE SCHEMA IF NOT EXISTS needs the CREATE privilege even when the schema exists.
  const exists = async () =>
    ((await client.query('SELECT 1 FROM pg_namespace WHERE nspname = $1', [schema])).rowCount ?? 0) > 0;
  if (await exists()) return;
  // Two sessions creating the same schema at once: the second's CREATE SCHEMA IF NOT EXISTS
  // would fail with a unique violation on pg_namespace. This lock (to the end of the batch's
  // transaction, only when the schema is new) makes it wait, then find the schema.
  await lockName(client, 'schema', schema);
  if (!(await exists())) await client.query(`CREATE SCHEMA IF NOT EXISTS ${quoteIdent(schema)}`);
}

/** A transaction-scoped advisory lock on a name (JSON-encoded: no two names share a key). */
async function lockName(client: pg.ClientBase, kind: string, ...name: string[]) {
  await client.query('SELECT pg_advisory_xact_lock(hashtextextended($1, 0))', [
    JSON.stringify([`pg-bulk-ingest ${kind}`, ...name]),
  ]);
}

/**
 * -- copy-kept-columns: existing rows into the replacement.
 * Columns present in both keep their values, cast to the new type where it changed (a failing
 * cast fails the batch: nothing is lost). SHARE mode keeps readers reading and stops writers,
 * whose rows would otherwise be lost at the swap.
 */
async function copyKeptColumns(client: pg.ClientBase, table: IngestTable, oid: number, replacement: string) {
  const live = qualifiedName(table.schema, table.name);
  await client.query(`LOCK TABLE ${live} IN SHARE MODE`);
  const { rows } = await client.query<{ name: string }>(
    'SELECT attname AS name FROM pg_attribute WHERE attrelid = $1 AND attnum > 0 AND NOT attisdropped',
    [oid],
  );
  const liveNames = new Set(rows.map((r) => r.name));
  const kept = table.columns.filter((c) => liveNames.has(c.name));
  if (kept.length === 0) return;
  const select = kept.map((c) => `CAST(${quoteIdent(c.name)} AS ${c.type})`).join(', ');
  await client.query(
    `INSERT INTO ${qualifiedName(table.schema, replacement)} (${columnList(kept.map((c) => c.name))}) SELECT ${select} FROM ${live}`,
  );
}

/** Builds a prepared table's indexes (a table created in this batch gets them after its load). */
export async function buildIndexes(client: pg.ClientBase, p: PreparedTable): Promise<void> {
  for (const sql of createIndexesSql(qualifiedName(p.table.schema, p.relationName), p.builtFrom))
    await client.query(sql);
}
