/**
 * Swaps a replacement table (built by a migration or `Delete.BEFORE_FIRST_BATCH` under a
 * temporary name, in the same schema, in the batch's transaction) in for the live table.
 *
 * Everything happens in the caller's transaction, so other sessions see the old table, its
 * views and grants until the caller commits, and then only the new ones. The ACCESS EXCLUSIVE
 * lock on the live table is held from the swap to that commit: keep what follows it short.
 */

import type pg from 'pg';
import { InvariantError } from '../../errors.ts';
import { relationOid } from '../live-table.ts';
import type { BlockingBackends } from '../options-schema.ts';
import { qualifiedName, quoteIdent } from '../sql.ts';
import { captureDependentViews, recreateViews } from './dependent-views.ts';
import { withBlockersRemoved } from './force-execute.ts';
import { captureTablePrivileges, restoreTablePrivileges } from './table-privileges.ts';
import { captureTableProperties, restoreTableProperties } from './table-properties.ts';

export interface ReplaceTableResult {
  /** Backends whose query was cancelled because they blocked the swap. */
  readonly cancelledBackends: number;
  /** Backends terminated because they still blocked the swap after `terminateAfterMs`. */
  readonly terminatedBackends: number;
  /** Views and materialized views dropped with the live table and created again. */
  readonly recreatedViews: number;
  /** Foreign keys of other tables referencing the live table, dropped with it and added again. */
  readonly recreatedForeignKeys: number;
}

/**
 * Called inside an open transaction on `client`, which created `replacementName`.
 *
 * Locks the live table (removing blocking backends as `blockingBackends` says), captures the
 * views that depend on it, the foreign keys of other tables that reference it, and everything
 * attached to it (table-properties.ts, table-privileges.ts), drops it with those views and
 * foreign keys, renames the replacement to its name, gives it the live table's comments, RLS
 * policies, triggers, storage parameters, statistics targets, replica identity, publications,
 * owner and privileges (table and column level, every role, grant options), creates the views
 * again with their grants, comments, owners and indexes, and adds the foreign keys again. Adding a foreign key checks the referencing table's
 * rows against the new table: a batch that leaves them without the rows they reference fails
 * (and rolls back) instead of losing the constraint. The whole swap runs under
 * `withBlockersRemoved`, so a backend holding a lock on a dependent view is dealt with like one
 * holding the table.
 */
export async function replaceTable(
  client: pg.ClientBase,
  target: { schema: string; name: string; replacementName: string },
  blockingBackends: BlockingBackends,
): Promise<ReplaceTableResult> {
  await assertInTransaction(client, target);
  const { result, cancelledBackends, terminatedBackends } = await withBlockersRemoved(
    client,
    blockingBackends,
    () => swap(client, target),
  );
  return { cancelledBackends, terminatedBackends, ...result };
}

async function swap(
  client: pg.ClientBase,
  target: { schema: string; name: string; replacementName: string },
): Promise<{ recreatedViews: number; recreatedForeignKeys: number }> {
  const live = qualifiedName(target.schema, target.name);
  const replacement = qualifiedName(target.schema, target.replacementName);
  // First, so that between the capture and the drop no view can be created on the table
  // (CREATE VIEW needs a lock on it) and no reader sees it half-swapped.
  await client.query(`LOCK TABLE ${live} IN ACCESS EXCLUSIVE MODE`);
  const liveOid = await relationOid(client, target.schema, target.name);
  if (liveOid === null) throw new InvariantError(`Expected table ${live} to exist`);
  const views = await captureDependentViews(client, liveOid);
  const foreignKeys = await referencingForeignKeys(client, liveOid);
  const properties = await captureTableProperties(client, liveOid);
  const privileges = await captureTablePrivileges(client, liveOid);
  await client.query(`DROP TABLE ${live} CASCADE`);
  await client.query(`ALTER TABLE ${replacement} RENAME TO ${quoteIdent(target.name)}`);
  // Policies, triggers and publications name the table: it must have its name first. Then the
  // owner and privileges last, while we still own it for the statements before.
  await restoreTableProperties(client, target.schema, target.name, properties);
  await restoreTablePrivileges(client, target.schema, target.name, privileges);
  const recreatedViews = await recreateViews(client, views);
  // The definitions name the referenced table as this session resolves it, which is now the
  // replacement under the live table's name.
  for (const fk of foreignKeys) {
    await client.query(`ALTER TABLE ${fk.table} ADD CONSTRAINT ${quoteIdent(fk.name)} ${fk.definition}`);
  }
  return { recreatedViews, recreatedForeignKeys: foreignKeys.length };
}

/** A foreign key of another table that references the live table. */
interface ReferencingForeignKey {
  /** The referencing table, schema-qualified and quoted. */
  readonly table: string;
  readonly name: string;
  /** `pg_get_constraintdef`: `FOREIGN KEY (...) REFERENCES ... [ON DELETE ...] [NOT VALID]`. */
  readonly definition: string;
}

/** Foreign keys of other tables referencing the table (those of partitions come with their parent's). */
async function referencingForeignKeys(
  client: pg.ClientBase,
  tableOid: number,
): Promise<ReferencingForeignKey[]> {
  const { rows } = await client.query<ReferencingForeignKey>(
    `SELECT format('%I.%I', n.nspname, c.relname) AS "table", con.conname AS name,
       pg_get_constraintdef(con.oid) AS definition
     FROM pg_constraint AS con
     JOIN pg_class AS c ON c.oid = con.conrelid
     JOIN pg_namespace AS n ON n.oid = c.relnamespace
     WHERE con.contype = 'f' AND con.confrelid = $1::oid AND con.conrelid <> $1::oid AND con.conparentid = 0
     ORDER BY 1, 2`,
    [tableOid],
  );
  return rows;
}

/**
 * Outside a transaction each statement would commit on its own, and a failure after the DROP
 * would lose the table. The replacement was created in the caller's transaction, so that
 * transaction has an id; in autocommit, the SELECT below runs in one that has none.
 */
async function assertInTransaction(
  client: pg.ClientBase,
  target: { schema: string; name: string; replacementName: string },
): Promise<void> {
  const { rows } = await client.query<{ xid: string | null }>(
    'SELECT txid_current_if_assigned()::text AS xid',
  );
  if (rows[0]?.xid == null) {
    throw new InvariantError(
      `replaceTable(${qualifiedName(target.schema, target.name)}) must run inside the transaction that built ` +
        `${quoteIdent(target.replacementName)}, got a client with no write transaction open`,
    );
  }
}
