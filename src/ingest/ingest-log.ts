/**
 * What `ingest()` tells its `logger` (options.ts; none by default), one function per step, so
 * the messages and their fields are written in one place (docs/under-the-hood.md, "Logging").
 * Each line has a `batch` field (1-based in this ingest) once batches have started.
 */
import type { BatchReport } from './ingest-batch.ts';
import type { TableMigration } from './migrate/migration-plan.ts';
import type { IngestLogger, Json } from './options.ts';
import type { IngestTable } from './table-definition.ts';

const label = (table: IngestTable) => `${table.schema}.${table.name}`;

export function logStart(
  logger: IngestLogger,
  tables: readonly IngestTable[],
  highWatermark: Json | null,
): void {
  logger.info(
    { tables: tables.map(label), highWatermark },
    'ingest: starting, batches() called with this high watermark',
  );
}

/** A table migrated: altered in place (done, before the batch's transaction) or rebuilt (at the batch's commit). */
export function logMigration(logger: IngestLogger, batch: number, migration: TableMigration): void {
  const { table, path, differences, rebuildReasons, lockWaitMs, lockAttempts } = migration;
  if (path === 'in-place') {
    logger.info(
      { batch, table, path, differences, lockWaitMs, lockAttempts },
      'ingest: table altered in place to match its definition',
    );
  } else {
    logger.info(
      { batch, table, path, differences, rebuildReasons },
      'ingest: table rebuilt to match its definition, swapped in at the commit',
    );
  }
}

/** A replacement table swapped in for the live one (visible at the commit), with what came along. */
export function logSwap(
  logger: IngestLogger,
  batch: number,
  table: IngestTable,
  swap: {
    cancelledBackends: number;
    terminatedBackends: number;
    recreatedViews: number;
    recreatedForeignKeys: number;
  },
): void {
  logger.info({ batch, table: label(table), ...swap }, 'ingest: replacement table swapped in');
  const { cancelledBackends, terminatedBackends } = swap;
  if (cancelledBackends + terminatedBackends > 0) {
    logger.warn(
      { batch, table: label(table), cancelledBackends, terminatedBackends },
      'ingest: backends blocking the swap were cancelled or terminated (blockingBackends)',
    );
  }
}

/** A batch committed (or left unapplied by the queue's afterBegin hook: a duplicate). */
export function logBatch(logger: IngestLogger, batch: number, report: BatchReport): void {
  if (!report.applied) {
    logger.info({ batch }, 'ingest: batch not applied (not due)');
    return;
  }
  for (const migration of report.migrations)
    if (migration.path === 'rebuild') logMigration(logger, batch, migration);
  if (report.rejectedRows > 0) {
    logger.warn(
      { batch, rejectedRows: report.rejectedRows },
      'ingest: rows refused and quarantined in bulk_ingest.rejected_rows (BadRows.QUARANTINE)',
    );
  }
  const rows = Object.fromEntries([...report.rows].map(([table, count]) => [label(table), count]));
  const ms = Object.fromEntries(Object.entries(report.phaseMs).map(([phase, t]) => [phase, Math.round(t)]));
  logger.info({ batch, rows, phaseMs: ms }, 'ingest: batch committed');
}

export function logEnd(logger: IngestLogger, batches: number): void {
  logger.info(
    { batches },
    batches === 0 ? 'ingest: no batches; missing tables created, nothing else changed' : 'ingest: done',
  );
}
