/**
 * What a batch must do to a live table: nothing, alter it in place (every difference is one
 * PostgreSQL applies without rewriting or scanning the table), or rebuild it and swap it in.
 * Read-only: it describes the table and decides; in-place-migration.ts and prepare-table.ts act.
 */
import type pg from 'pg';
import { SchemaChangeError } from '../../errors.ts';
import { describeDefinition, type LiveTable, type TableShape, type Transaction } from '../live-table.ts';
import { SchemaChanges } from '../options.ts';
import { qualifiedName } from '../sql.ts';
import type { IngestTable } from '../table-definition.ts';
import { additiveTarget, type MigrationTarget } from './additive-target.ts';
import { type Difference, describeDifference, diffShapes, rebuildReason } from './table-diff.ts';

export type MigrationPath = 'none' | 'in-place' | 'rebuild';

export interface MigrationPlan {
  readonly path: MigrationPath;
  readonly live: TableShape;
  readonly target: MigrationTarget;
  readonly differences: readonly Difference[];
  /** Why the table must be rebuilt, one reason per difference that cannot be applied in place. */
  readonly rebuildReasons: readonly string[];
}

/**
 * -- column-dependents: live columns that something besides the table's own indexes and
 * primary key / unique constraints, owned sequences and defaults depends on (views and rules, CHECK, foreign keys of this or
 * other tables, exclusion constraints, triggers, statistics objects).
 * Input: $1 table oid. Output: one row per such column name.
 */
const COLUMN_DEPENDENTS_SQL = `
  SELECT DISTINCT a.attname::text AS name
    FROM pg_depend d
    JOIN pg_attribute a ON a.attrelid = d.refobjid AND a.attnum = d.refobjsubid
   WHERE d.refclassid = 'pg_class'::regclass AND d.refobjid = $1 AND d.refobjsubid > 0
     AND NOT (d.classid = 'pg_class'::regclass AND d.objid IN (SELECT indexrelid FROM pg_index WHERE indrelid = $1))
     AND NOT (d.classid = 'pg_constraint'::regclass
              AND d.objid IN (SELECT oid FROM pg_constraint WHERE conrelid = $1 AND contype IN ('p', 'u')))
     AND NOT (d.classid = 'pg_class'::regclass AND d.deptype = 'a')
     AND d.classid <> 'pg_attrdef'::regclass`;

/**
 * Plans `liveTable`'s migration to `table` (the live table as describeTable read it);
 * `transaction` says whether the client is inside one (describeDefinition's probe needs one).
 */
export async function planMigration(
  client: pg.ClientBase,
  table: IngestTable,
  liveTable: LiveTable,
  schemaChanges: SchemaChanges,
  transaction: Transaction,
): Promise<MigrationPlan> {
  const { oid, shape: live } = liveTable;
  const wanted = await describeDefinition(client, table, transaction);
  const target =
    schemaChanges === SchemaChanges.ADDITIVE ? additiveTarget(live, wanted, table) : { table, shape: wanted };
  let differences = diffShapes(live, target.shape);
  // ADDITIVE drops nothing: an index only the table has (even an expression one) stays; only
  // one left invalid by a failed CREATE INDEX CONCURRENTLY goes (it is no index, just a cost).
  if (schemaChanges === SchemaChanges.ADDITIVE)
    differences = differences.filter((d) => d.kind !== 'index-dropped' || d.index.key.startsWith('invalid|'));
  if (differences.length === 0) return { path: 'none', live, target, differences, rebuildReasons: [] };
  if (schemaChanges === SchemaChanges.FREEZE) throw frozen(table, differences);
  const touchesColumns = differences.some((d) => d.kind === 'column-dropped' || d.kind === 'column-type');
  const dependents = touchesColumns
    ? new Set((await client.query<{ name: string }>(COLUMN_DEPENDENTS_SQL, [oid])).rows.map((r) => r.name))
    : new Set<string>();
  const rebuildReasons = differences.flatMap((d) => rebuildReason(d, dependents) ?? []);
  return {
    path: rebuildReasons.length > 0 ? 'rebuild' : 'in-place',
    live,
    target,
    differences,
    rebuildReasons,
  };
}

function frozen(table: IngestTable, differences: readonly Difference[]): SchemaChangeError {
  const lines = differences.map(describeDifference);
  return new SchemaChangeError(
    `Table ${qualifiedName(table.schema, table.name)} differs from the batch's definition, and schemaChanges is SchemaChanges.FREEZE (table vs definition):\n  - ${lines.join('\n  - ')}`,
    { table: `${table.schema}.${table.name}` },
    lines,
  );
}

/** How a batch migrated one table, for the BatchReport, logs and metrics. */
export interface TableMigration {
  /** `schema.name`. */
  readonly table: string;
  readonly path: 'in-place' | 'rebuild';
  /** Every difference found, table vs definition, in words. */
  readonly differences: readonly string[];
  /** For a rebuild: why it could not be done in place. */
  readonly rebuildReasons: readonly string[];
  /** Milliseconds spent waiting for the ALTER's lock, retries and backoff included (0 for a rebuild). */
  readonly lockWaitMs: number;
  /** ALTER attempts: more than 1 when the lock was not granted within its timeout. */
  readonly lockAttempts: number;
}

export function describeDifferences(plan: MigrationPlan): string[] {
  return plan.differences.map(describeDifference);
}
