/**
 * Alters a live table in place, when every difference from its definition is one PostgreSQL
 * applies without rewriting or scanning it. Runs before the batch's transaction, on the same
 * connection, in steps (docs/under-the-hood.md, "In place"):
 *
 *   1. one short transaction: BEGIN; [afterBegin hook]; plan again; SET LOCAL lock_timeout;
 *      ALTER TABLE ... (every column change and dropped unique constraint in one statement,
 *      so one lock); COMMIT. Retried on lock timeout (lock-retry.ts).
 *   2. outside any transaction: DROP INDEX CONCURRENTLY for each index no longer wanted, then
 *      CREATE INDEX CONCURRENTLY for each new one: readers and writers carry on meanwhile.
 *
 * The table keeps its oid and relfilenode, so views, grants and everything else attached to it
 * stay as they are. Anything else is left to the batch's transaction, which rebuilds the table.
 */

import type pg from 'pg';
import { asDatabaseError, InvariantError, SchemaChangeError } from '../../errors.ts';
import { describeTable, indexKey, type Transaction } from '../live-table.ts';
import type { SchemaChanges } from '../options.ts';
import type { BlockingBackends } from '../options-schema.ts';
import { columnList, MAX_IDENTIFIER_BYTES, qualifiedName, quoteIdent } from '../sql.ts';
import { withBlockersRemoved } from '../swap/force-execute.ts';
import type { IndexDefinition, IngestTable } from '../table-definition.ts';
import { ALTER_LOCK_TIMEOUT_MS, LockRetry } from './lock-retry.ts';
import {
  describeDifferences,
  type MigrationPlan,
  planMigration,
  type TableMigration,
} from './migration-plan.ts';

export interface InPlaceOptions {
  readonly schemaChanges: SchemaChanges;
  readonly blockingBackends: BlockingBackends;
  /** The batch's afterBegin hook: run in step 1's transaction too; `false` means the batch is not due. */
  readonly afterBegin?: (client: pg.ClientBase) => Promise<boolean | undefined>;
}

interface Steps {
  /** `ALTER TABLE` subcommands, in order. */
  readonly alter: readonly string[];
  readonly dropIndexes: readonly string[];
  readonly createIndexes: readonly IndexDefinition[];
}

/**
 * Migrates `table` in place if it exists and that is possible; returns what was done, or null
 * when there was nothing to do in place (no table, no difference, a rebuild needed, or the
 * batch not due). Must be called outside a transaction.
 */
export async function migrateInPlace(
  client: pg.ClientBase,
  table: IngestTable,
  options: InPlaceOptions,
): Promise<TableMigration | null> {
  const retry = new LockRetry(options.blockingBackends);
  let altered: { plan: MigrationPlan; steps: Steps; lockWaitMs: number } | null;
  for (;;) {
    const attempt = { start: undefined as number | undefined };
    try {
      altered = await alterOnce(client, table, options, retry, attempt);
      break;
    } catch (error) {
      await client.query('ROLLBACK').catch(() => undefined);
      const attemptMs = attempt.start === undefined ? 0 : performance.now() - attempt.start;
      if (!(await retry.shouldRetry(error, attemptMs))) throw error;
    }
  }
  if (altered === null) return null;
  // Outside the retries: a failed concurrent index build is reported, not tried again.
  await dropIndexesConcurrently(client, table, altered.steps.dropIndexes);
  await createIndexesConcurrently(client, table, altered.steps.createIndexes);
  return {
    table: `${table.schema}.${table.name}`,
    path: 'in-place',
    differences: describeDifferences(altered.plan),
    rebuildReasons: [],
    lockWaitMs: altered.lockWaitMs,
    lockAttempts: retry.attempts,
  };
}

/** Step 1: the short transaction. Null when there is nothing to do in place. */
async function alterOnce(
  client: pg.ClientBase,
  table: IngestTable,
  options: InPlaceOptions,
  retry: LockRetry,
  attempt: { start: number | undefined },
): Promise<{ plan: MigrationPlan; steps: Steps; lockWaitMs: number } | null> {
  // Planned twice: first outside any transaction (the batch found something to do in place, but
  // another session may have done it since: then no transaction, no hook), then under the hook's
  // locks, in case another session migrated the table meanwhile.
  if ((await inPlacePlan(client, table, options, 'none')) === null) return null;
  await client.query('BEGIN');
  if ((await options.afterBegin?.(client)) === false) {
    await client.query('ROLLBACK');
    return null;
  }
  const plan = await inPlacePlan(client, table, options, 'open');
  if (plan === null) {
    await client.query('COMMIT');
    return null;
  }
  const steps = inPlaceSteps(plan);
  attempt.start = performance.now();
  retry.attempts += 1;
  if (steps.alter.length > 0) await alter(client, table, steps, retry);
  await client.query('COMMIT');
  return { plan, steps, lockWaitMs: retry.waitedMs + (performance.now() - attempt.start) };
}

async function inPlacePlan(
  client: pg.ClientBase,
  table: IngestTable,
  options: InPlaceOptions,
  transaction: Transaction,
): Promise<MigrationPlan | null> {
  const live = await describeTable(client, table.schema, table.name);
  if (live === null) return null;
  try {
    const plan = await planMigration(client, table, live, options.schemaChanges, transaction);
    return plan.path === 'in-place' ? plan : null;
  } catch (error) {
    // A refused schema change (FREEZE, ADDITIVE conflict): the batch's own transaction reports
    // it, after its afterBegin hook has confirmed the batch is due.
    if (!(error instanceof SchemaChangeError)) throw error;
    return null;
  }
}

async function alter(client: pg.ClientBase, table: IngestTable, steps: Steps, retry: LockRetry) {
  const sql = `ALTER TABLE ${qualifiedName(table.schema, table.name)} ${steps.alter.join(', ')}`;
  if (!retry.isLast) {
    await client.query(`SET LOCAL lock_timeout = ${ALTER_LOCK_TIMEOUT_MS}`);
    await client.query(sql);
    return;
  }
  await client.query('SET LOCAL lock_timeout = 0');
  await withBlockersRemoved(client, retry.lastAttemptBlockingBackends(), () => client.query(sql));
}

function inPlaceSteps(plan: MigrationPlan): Steps {
  const alter: string[] = [];
  const dropIndexes: string[] = [];
  const createIndexes: IndexDefinition[] = [];
  const wantedIndexes = [...plan.target.table.indexes];
  for (const d of plan.differences) {
    switch (d.kind) {
      case 'index-dropped':
        if (d.index.constraint) alter.push(`DROP CONSTRAINT ${quoteIdent(d.index.constraint.name)}`);
        else dropIndexes.push(d.index.name);
        break;
      case 'column-dropped':
        alter.push(`DROP COLUMN ${quoteIdent(d.column.name)}`);
        break;
      case 'column-added':
        alter.push(`ADD COLUMN ${quoteIdent(d.column.name)} ${d.column.type}`);
        break;
      case 'column-type':
        alter.push(`ALTER COLUMN ${quoteIdent(d.name)} TYPE ${d.to}`);
        break;
      case 'column-null':
        alter.push(`ALTER COLUMN ${quoteIdent(d.name)} DROP NOT NULL`);
        break;
      case 'index-added': {
        const at = wantedIndexes.findIndex((i) => indexKey(i.unique, i.using, i.columns) === d.key);
        const [index] = wantedIndexes.splice(at, 1);
        if (at >= 0 && index) createIndexes.push(index);
        break;
      }
      default:
        throw new InvariantError(`A ${d.kind} difference cannot be applied in place`); // planMigration said rebuild
    }
  }
  return { alter, dropIndexes, createIndexes };
}

async function dropIndexesConcurrently(client: pg.ClientBase, table: IngestTable, names: readonly string[]) {
  for (const name of names)
    await client.query(`DROP INDEX CONCURRENTLY IF EXISTS ${qualifiedName(table.schema, name)}`);
}

/**
 * A failed CREATE INDEX CONCURRENTLY (a duplicate for a unique index, a cancel) leaves an
 * invalid index behind: it is dropped before the error is passed on. Should that fail too
 * (connection lost), the next batch sees it as an `invalid|` index, drops and rebuilds it.
 */
async function createIndexesConcurrently(
  client: pg.ClientBase,
  table: IngestTable,
  indexes: readonly IndexDefinition[],
) {
  for (const index of indexes) {
    const name = await freeIndexName(client, table, index);
    try {
      await client.query(
        `CREATE ${index.unique ? 'UNIQUE ' : ''}INDEX CONCURRENTLY ${quoteIdent(name)} ON ${qualifiedName(table.schema, table.name)} USING ${index.using} (${columnList(index.columns)})`,
      );
    } catch (error) {
      if (asDatabaseError(error)) {
        await client
          .query(`DROP INDEX CONCURRENTLY IF EXISTS ${qualifiedName(table.schema, name)}`)
          .catch(() => undefined);
      }
      throw error;
    }
  }
}

/** The name `CREATE INDEX` would choose (`t_a_b_idx`), numbered if taken. */
async function freeIndexName(client: pg.ClientBase, table: IngestTable, index: IndexDefinition) {
  const base = [table.name, ...index.columns].join('_');
  for (let n = 0; ; n++) {
    const tail = `_idx${n === 0 ? '' : n}`;
    const name = `${truncateToBytes(base, MAX_IDENTIFIER_BYTES - Buffer.byteLength(tail))}${tail}`;
    const { rowCount } = await client.query(
      'SELECT 1 FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = $1 AND c.relname = $2',
      [table.schema, name],
    );
    if (rowCount === 0) return name;
  }
}

function truncateToBytes(text: string, maxBytes: number): string {
  let out = text;
  while (Buffer.byteLength(out) > maxBytes) out = [...out].slice(0, -1).join('');
  return out;
}
