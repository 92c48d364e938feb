/**
 * One batch, one transaction: everything in it is visible at COMMIT, or nothing is.
 *
 *   BEGIN
 *   [hooks.afterBegin]                      the queue worker locks tables and checks sequence here
 *   first batch: create / migrate / replace tables            (prepare-table.ts)
 *     a difference PostgreSQL applies in place, found there: ROLLBACK (no row was sent yet);
 *     the in-place step in its own short transaction (BEGIN [hooks.afterBegin] ALTER TABLE
 *     COMMIT) and CREATE/DROP INDEX CONCURRENTLY (migrate/); then the batch from BEGIN again
 *   per table: its writer, and its staging table for an upsert (batch-tables.ts)
 *   COPY rows → table, replacement, or staging table          (batch-rows.ts)
 *   upsert: merge staging → target                             (merge.ts)
 *   build indexes on new tables; swap replacements in          (batch-tables.ts, swap/)
 *   COMMENT ON first table with the high watermark             (high-watermark.ts)
 *   onBeforeVisible per table; [hooks.beforeCommit]
 *   COMMIT   (any failure: ROLLBACK, and the error says where)
 */
import type pg from 'pg';
import { asDatabaseError, BatchError, isRetryableSqlState, PgBulkIngestError, RowError } from '../errors.ts';
import {
  assertFewBadRows,
  type BadRowIsolation,
  badRowSqlState,
  ingestOrigin,
  isolateBadRows,
} from './bad-rows.ts';
import {
  type BatchTable,
  finishNewTables,
  mergeStaged,
  openBatchTables,
  prepareTables,
  type Swaps,
} from './batch-tables.ts';
import { copyRows } from './copy-rows.ts';
import type { SourceBatch } from './encoded-rows.ts';
import { parseComment, readTableComment, withHighWatermark, writeTableComment } from './high-watermark.ts';
import { logMigration } from './ingest-log.ts';
import { migrateInPlace } from './migrate/in-place-migration.ts';
import type { TableMigration } from './migrate/migration-plan.ts';
import { BadRows, Delete, SchemaChanges } from './options.ts';
import type { ResolvedOptions } from './options-schema.ts';
import { InPlaceFirst } from './prepare-table.ts';
import { insertRejectedRows, type RejectedRow, type RejectedRowOrigin } from './rejected-rows.ts';
import { qualifiedName } from './sql.ts';
import { assertStorableJson } from './storable-json.ts';
import type { IngestTable } from './table-definition.ts';

/** Extension points for the queue worker; `ingest()` itself uses none. */
export interface BatchHooks {
  /**
   * The caller vouches that the connection has no transaction open (the worker's connections
   * come from its pool, which never gets back one that failed): ingest() then skips the round
   * trip that checks it.
   */
  readonly connectionIdle?: boolean;
  /**
   * Runs right after BEGIN of every transaction opened for the batch: the batch's own, and the
   * short one that alters a table in place before it (so a batch that is not due, e.g. a
   * duplicate with an older definition, changes nothing). Returning `false` rolls that
   * transaction back and leaves the batch unapplied.
   */
  readonly afterBegin?: (client: pg.ClientBase) => Promise<boolean | undefined>;
  /**
   * Runs just before COMMIT, after `onBeforeVisible`; `rejected` are the rows this batch
   * quarantined (already in bulk_ingest.rejected_rows), e.g. to count them in a ledger row
   * written in the same transaction.
   */
  readonly beforeCommit?: (client: pg.ClientBase, rejected: readonly RejectedRow[]) => Promise<void>;
  /**
   * Where a quarantined row is recorded as coming from. Default (`ingest()`): stream = the first
   * table's `schema.table`, seq NULL, the row's number in the batch.
   */
  readonly rejectedRowOrigin?: (row: RejectedRow) => RejectedRowOrigin;
  /**
   * Under `BadRows.QUARANTINE`: rows (by number in the batch) to quarantine unsent, with why:
   * the queue's validation refused one of their values and let them through.
   */
  readonly refusedRows?: ReadonlyMap<number, string>;
}

export interface BatchReport {
  readonly applied: boolean;
  /** Rows written per table (rows quarantined not counted). */
  readonly rows: ReadonlyMap<IngestTable, number>;
  /** Rows written to bulk_ingest.rejected_rows by this batch (`BadRows.QUARANTINE`); 0 otherwise. */
  readonly rejectedRows: number;
  /** Those rows, as the core found them (the hook `rejectedRowOrigin` says where they came from). */
  readonly rejected: readonly RejectedRow[];
  /**
   * Milliseconds per phase: migrate (DDL, copy of kept rows, indexes, swap), copy, merge, commit,
   * and isolate (finding the bad rows under `BadRows.QUARANTINE`, after the first attempt failed).
   */
  readonly phaseMs: { migrate: number; copy: number; merge: number; commit: number; isolate: number };
  /** Tables altered in place or rebuilt by this batch (a Delete replacement counts too). */
  readonly migratedTables: number;
  /** Each table migrated: which path (in place or rebuilt), the differences found, why, the lock wait. */
  readonly migrations: readonly TableMigration[];
  readonly cancelledBackends: number;
  readonly terminatedBackends: number;
}

export interface BatchContext {
  readonly tables: readonly IngestTable[];
  readonly options: ResolvedOptions;
  /** 1-based position of the batch in this ingest. */
  readonly batchNumber: number;
  /** The first batch of an ingest creates and migrates tables. */
  readonly isFirst: boolean;
  readonly hooks?: BatchHooks;
}

export async function ingestBatch(
  client: pg.ClientBase,
  context: BatchContext,
  batch: SourceBatch,
): Promise<BatchReport> {
  const [highWatermark] = batch;
  // A watermark JSON cannot hold is refused before anything is written; a callable one once it
  // is called, after the rows (the batch then rolls back). Metadata goes only to onBeforeVisible,
  // never stored, so it may be anything, as in the Python library.
  if (typeof highWatermark !== 'function')
    assertStorableJson(highWatermark, watermarkLabel(context), { batch: context.batchNumber });
  const clock = new PhaseClock();
  try {
    return await batchTransaction(client, context, batch, clock, undefined);
  } catch (error) {
    if (!(error instanceof InPlaceFirst)) throw error;
  }
  // A table differs in a way PostgreSQL applies in place: that goes first, in its own short
  // transaction (the batch's was rolled back before its rows), then the batch.
  const inPlace = await clock.time('migrate', () => migrateTablesInPlace(client, context));
  return batchTransaction(client, context, batch, clock, inPlace);
}

/**
 * The batch's transaction. `inPlace`: the in-place step's migrations, once it ran; until then
 * (undefined) a difference it would apply throws InPlaceFirst, so that most batches, whose tables
 * already match, pay for no in-place check of their own.
 */
async function batchTransaction(
  client: pg.ClientBase,
  context: BatchContext,
  batch: SourceBatch,
  clock: PhaseClock,
  inPlace: readonly TableMigration[] | undefined,
): Promise<BatchReport> {
  const [highWatermark, metadata, rows] = batch;
  await client.query('BEGIN');
  try {
    if ((await context.hooks?.afterBegin?.(client)) === false) {
      await client.query('ROLLBACK');
      return { ...emptyReport, phaseMs: clock.ms, migrations: inPlace ?? [] };
    }
    const first = context.tables[0] as IngestTable;
    const { options } = context;
    const prepared = await clock.time('migrate', () =>
      prepareTables(
        client,
        context.tables,
        context.isFirst
          ? { ...options, inPlaceFirst: inPlace === undefined && inPlaceApplies(context) }
          : undefined,
      ),
    );
    // The first table's comment (its high watermark), as found before this batch changed it:
    // read with its shape when the table was described, else on its own.
    const liveComment = prepared[0]?.liveComment;
    const comment = parseComment(
      liveComment !== undefined ? liveComment : await readTableComment(client, first.schema, first.name),
      first.schema,
      first.name,
    );
    const quarantine = options.badRows === BadRows.QUARANTINE;
    const tables = await openBatchTables(client, prepared, options.upsert, quarantine);
    const writers = tables.map((t) => t.writer);
    // Under QUARANTINE the batch is tried as always, but in a savepoint it can go back to.
    if (quarantine) await client.query('SAVEPOINT pgbi_batch');
    const badRow = await clock.time('copy', () => copyRows(client, context, writers, rows, quarantine));
    const watermark = typeof highWatermark === 'function' ? highWatermark() : highWatermark;
    assertStorableJson(watermark, watermarkLabel(context), { batch: context.batchNumber });
    assertFewBadRows(writers, context);
    let swaps = badRow === undefined ? await mergeAndFinish(client, tables, context, clock) : undefined;
    let isolation: BadRowIsolation | undefined;
    if (swaps === undefined) {
      // A row's data failed the batch: back to before the rows, and find which ones.
      await client.query('ROLLBACK TO SAVEPOINT pgbi_batch');
      isolation = await clock.time('isolate', () => isolateBadRows(client, tables, context));
      swaps = await clock.time('migrate', () => finishNewTables(client, tables, context, true));
    }
    const rejected = [...writers.flatMap((w) => w.rejected), ...(isolation?.rejected ?? [])];
    await insertRejectedRows(client, rejected, context.hooks?.rejectedRowOrigin ?? ingestOrigin(context));
    await writeTableComment(client, first.schema, first.name, withHighWatermark(comment, watermark));
    for (const table of context.tables) await context.options.onBeforeVisible(client, table, metadata);
    await context.hooks?.beforeCommit?.(client, rejected);
    await clock.time('commit', () => client.query('COMMIT'));
    const rebuilt = prepared.flatMap((p) => p.migration ?? []);
    return {
      applied: true,
      rows: new Map(writers.map((w) => [w.table, w.rowCount - (isolation?.rejectedPerWriter.get(w) ?? 0)])),
      rejectedRows: rejected.length,
      rejected,
      phaseMs: clock.ms,
      migratedTables: prepared.filter((p) => p.replacesLive).length + (inPlace?.length ?? 0),
      migrations: [...(inPlace ?? []), ...rebuilt],
      ...swaps,
    };
  } catch (error) {
    await rollbackQuietly(client, error);
    throw asBatchError(error, context.batchNumber);
  }
}

/** Upsert merges, then new tables' indexes and swaps; undefined when, under QUARANTINE, a row's data failed them. */
async function mergeAndFinish(
  client: pg.ClientBase,
  tables: readonly BatchTable[],
  context: BatchContext,
  clock: PhaseClock,
): Promise<Swaps | undefined> {
  try {
    await clock.time('merge', () => mergeStaged(client, tables));
    return await clock.time('migrate', () => finishNewTables(client, tables, context));
  } catch (error) {
    if (context.options.badRows !== BadRows.QUARANTINE || badRowSqlState(error) === undefined) throw error;
    return undefined;
  }
}

const emptyReport = {
  applied: false,
  rows: new Map(),
  rejectedRows: 0,
  rejected: [],
  migratedTables: 0,
  migrations: [],
  cancelledBackends: 0,
  terminatedBackends: 0,
};

function watermarkLabel(context: BatchContext): string {
  return `Batch ${context.batchNumber}: the high watermark`;
}

/** Whether the in-place step may alter this batch's tables (a first batch that neither freezes nor replaces them). */
function inPlaceApplies(context: BatchContext): boolean {
  const { options } = context;
  return (
    context.isFirst &&
    options.schemaChanges !== SchemaChanges.FREEZE &&
    options.delete !== Delete.BEFORE_FIRST_BATCH
  );
}

/**
 * Between the batch's two transactions (the first found a difference PostgreSQL applies in
 * place): alter in place the tables whose every difference allows it. Not under FREEZE (nothing
 * changes), nor with Delete.BEFORE_FIRST_BATCH (the table is replaced anyway). A failure here
 * leaves the batch unapplied, and the tables as far as the in-place steps got (each step is
 * whole, and brings the table closer to its definition).
 */
async function migrateTablesInPlace(client: pg.ClientBase, context: BatchContext): Promise<TableMigration[]> {
  const { options } = context;
  if (!inPlaceApplies(context)) return [];
  const done: TableMigration[] = [];
  try {
    for (const table of context.tables) {
      const migration = await migrateInPlace(client, table, {
        schemaChanges: options.schemaChanges,
        blockingBackends: options.blockingBackends,
        ...(context.hooks?.afterBegin ? { afterBegin: context.hooks.afterBegin } : {}),
      });
      if (migration) {
        done.push(migration);
        logMigration(options.logger, context.batchNumber, migration);
      }
    }
  } catch (error) {
    throw asBatchError(error, context.batchNumber);
  }
  return done;
}

function asBatchError(error: unknown, batchNumber: number): unknown {
  if (error instanceof RowError && error.context.batch === undefined) {
    // Caught while encoding, where the batch number is not known: with several batches, say which.
    return new RowError(
      `Batch ${batchNumber}: ${error.message}`,
      { ...error.context, batch: batchNumber },
      { cause: error.cause },
    );
  }
  if (error instanceof PgBulkIngestError) return error;
  const db = asDatabaseError(error);
  if (!db) return error; // the caller's own error (e.g. from `batches`), or a lost connection: as it is
  const table = db.table ? ` on ${qualifiedName(db.schema ?? '', db.table)}` : '';
  return new BatchError(
    `Batch ${batchNumber} failed${table}: ${db.message} (SQLSTATE ${db.code})`,
    { batch: batchNumber, sqlState: db.code, ...(db.table ? { table: `${db.schema}.${db.table}` } : {}) },
    { cause: error, retryable: isRetryableSqlState(db.code) },
  );
}

async function rollbackQuietly(client: pg.ClientBase, original: unknown): Promise<void> {
  try {
    await client.query('ROLLBACK');
  } catch (rollbackError) {
    // The connection is most likely gone, which rolls back too. The original error is the one
    // to report; keep the rollback failure on it rather than dropping it.
    if (original instanceof Error) Object.assign(original, { rollbackError });
  }
}

class PhaseClock {
  readonly ms = { migrate: 0, copy: 0, merge: 0, commit: 0, isolate: 0 };

  async time<T>(phase: keyof PhaseClock['ms'], fn: () => Promise<T>): Promise<T> {
    const start = performance.now();
    try {
      return await fn();
    } finally {
      this.ms[phase] += performance.now() - start;
    }
  }
}
