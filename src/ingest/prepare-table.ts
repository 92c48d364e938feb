/**
 * At the first batch of an ingest, decides for each table where that batch's rows go, and does
 * the DDL, all inside the batch's transaction so nothing of it is visible before the commit:
 *
 * - missing: the table (and its schema) is created; its indexes are built after the load;
 * - `Delete.BEFORE_FIRST_BATCH`: an empty replacement table is created, swapped in at the end;
 * - differs from the definition: a replacement is created, the rows of the columns it keeps
 *   are copied in (the live table SHARE-locked: readable, not writable), swapped in at the end;
 * - otherwise the live table takes the rows.
 */
import type pg from 'pg';
import { readTableComment } from './high-watermark.ts';
import { describeDefinition, describeRelation, relationOid, shapeDifferences } from './live-table.ts';
import { type Delete, Delete as DeleteMode } from './options.ts';
import { columnList, qualifiedName, quoteIdent, temporaryRelationName } from './sql.ts';
import { createTableSql } from './table-ddl.ts';
import type { IngestTable } from './table-definition.ts';

export interface PreparedTable {
  readonly table: IngestTable;
  /** The relation (unqualified name, in the table's schema) this batch writes to. */
  readonly relationName: string;
  /** Indexes must be built on `relationName` before commit: it was created in this batch. */
  readonly buildIndexes: boolean;
  /** `relationName` replaces the live table at the end of the batch. */
  readonly replacesLive: boolean;
  /** Why the table is migrated, in words (empty when it is not). */
  readonly migration: readonly string[];
  /** The live table's comment, to carry over to its replacement. */
  readonly liveComment?: string | null;
}

export async function prepareTable(
  client: pg.ClientBase,
  table: IngestTable,
  deleteMode: Delete,
): Promise<PreparedTable> {
  await ensureSchema(client, table.schema);
  let oid = await relationOid(client, table.schema, table.name);
  if (oid === null) {
    // As for the schema: another session may be creating the table right now.
    await lockName(client, 'new table', table.schema, table.name);
    oid = await relationOid(client, table.schema, table.name);
  }
  if (oid === null) {
    await client.query(createTableSql(qualifiedName(table.schema, table.name), table));
    return { table, relationName: table.name, buildIndexes: true, replacesLive: false, migration: [] };
  }
  const differences = shapeDifferences(
    await describeRelation(client, oid),
    await describeDefinition(client, table),
  );
  const deleting = deleteMode === DeleteMode.BEFORE_FIRST_BATCH;
  if (differences.length === 0 && !deleting) {
    return { table, relationName: table.name, buildIndexes: false, replacesLive: false, migration: [] };
  }
  const replacement = temporaryRelationName('new');
  await client.query(createTableSql(qualifiedName(table.schema, replacement), table));
  if (!deleting) await copyKeptColumns(client, table, oid, replacement);
  const liveComment = await readTableComment(client, table.schema, table.name);
  return {
    table,
    relationName: replacement,
    buildIndexes: true,
    replacesLive: true,
    migration: differences,
    liveComment,
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
