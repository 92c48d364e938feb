/**
 * `ingest()`: the Python library's API. Reads the stored high watermark, asks `batches` for
 * what comes after it, and applies each batch in its own transaction (ingest-batch.ts).
 */
import type pg from 'pg';
import { PgBulkIngestError } from '../errors.ts';
import { EncodedRows, type SourceBatch, type SourceBatches } from './encoded-rows.ts';
import { highWatermarkOf, parseComment, readTableComment } from './high-watermark.ts';
import { type BatchContext, type BatchHooks, type BatchReport, ingestBatch } from './ingest-batch.ts';
import { logBatch, logEnd, logStart } from './ingest-log.ts';
import { relationOid } from './live-table.ts';
import { type Batches, Delete, HighWatermark, type IngestOptions, type Json } from './options.ts';
import { resolveOptions } from './options-schema.ts';
import { prepareTable } from './prepare-table.ts';
import { qualifiedName } from './sql.ts';
import { createIndexesSql } from './table-ddl.ts';
import type { IngestTable } from './table-definition.ts';

/**
 * Ingests every batch `batches(highWatermark)` yields into `tables`, one transaction per batch.
 * Resolves when every batch is committed; rejects with the first failure, that batch rolled back.
 */
export async function ingest(
  client: pg.ClientBase,
  tables: readonly IngestTable[],
  batches: Batches,
  options: IngestOptions = {},
): Promise<void> {
  await runIngest(client, tables, batches, options);
}

/**
 * `ingest()` with hooks into each batch's transaction, a report per batch, and rows that may come
 * already encoded (EncodedRows): for the queue worker.
 */
export async function runIngest(
  client: pg.ClientBase,
  tables: readonly IngestTable[],
  batches: SourceBatches,
  options: IngestOptions,
  hooks?: BatchHooks,
  onBatch?: (report: BatchReport) => void,
): Promise<void> {
  assertTables(tables);
  const resolved = resolveOptions(options);
  if (!hooks?.connectionIdle) await assertNotInTransaction(client);
  const startingWatermark = await startingHighWatermark(
    client,
    tables[0] as IngestTable,
    resolved.highWatermark,
  );
  logStart(resolved.logger, tables, startingWatermark);

  let batchNumber = 0;
  for await (const batch of batches(startingWatermark)) {
    batchNumber += 1;
    assertBatchShape(batch, batchNumber);
    const context: BatchContext = {
      tables,
      options: resolved,
      batchNumber,
      isFirst: batchNumber === 1,
      ...(hooks ? { hooks } : {}),
    };
    const report = await ingestBatch(client, context, batch);
    logBatch(resolved.logger, batchNumber, report);
    onBatch?.(report);
  }
  if (batchNumber === 0) await createMissingTables(client, tables);
  logEnd(resolved.logger, batchNumber);
}

async function startingHighWatermark(
  client: pg.ClientBase,
  first: IngestTable,
  option: Json,
): Promise<Json | null> {
  if (option === HighWatermark.EARLIEST) return null;
  if (option !== HighWatermark.LATEST) return option;
  const comment = await readTableComment(client, first.schema, first.name);
  return highWatermarkOf(parseComment(comment, first.schema, first.name));
}

/** With no batches, the tables still exist afterwards (empty if new); nothing is migrated or deleted. */
async function createMissingTables(client: pg.ClientBase, tables: readonly IngestTable[]): Promise<void> {
  await client.query('BEGIN');
  try {
    for (const table of tables) {
      if ((await relationOid(client, table.schema, table.name)) !== null) continue;
      const prepared = await prepareTable(client, table, Delete.OFF);
      for (const sql of createIndexesSql(qualifiedName(table.schema, prepared.relationName), table))
        await client.query(sql);
    }
    await client.query('COMMIT');
  } catch (error) {
    await client.query('ROLLBACK').catch(() => undefined);
    throw error;
  }
}

function invalidOption(message: string): PgBulkIngestError {
  return new PgBulkIngestError('INVALID_OPTIONS', message);
}

function assertTables(tables: readonly IngestTable[]): void {
  if (!Array.isArray(tables) || tables.length === 0) {
    throw invalidOption('Expected `tables` to be a non-empty array of tables from defineTable()');
  }
  tables.forEach((t, i) => {
    if (
      !t ||
      !Array.isArray(t.columns) ||
      t.columns.some((c: { parsedType?: unknown }) => c.parsedType === undefined)
    ) {
      throw invalidOption(`Expected \`tables[${i}]\` to be a table returned by defineTable()`);
    }
  });
}

/**
 * pg reports the status of the last ReadyForQuery, but a failed query rejects on its
 * ErrorResponse, before that message arrives: right after a `.catch()` the status is stale
 * ('T' in what is now a failed transaction, or 'I' after `BEGIN; <failing statement>`).
 * A round trip brings it up to date; in a failed transaction it fails with 25P02.
 */
async function assertNotInTransaction(client: pg.ClientBase): Promise<void> {
  let failed = false;
  try {
    await client.query('SELECT 1');
  } catch (error) {
    if ((error as { code?: unknown }).code !== '25P02') throw error;
    failed = true;
  }
  const status = failed ? 'E' : (client as pg.Client).getTransactionStatus?.();
  if (status === 'T' || status === 'E') {
    throw new PgBulkIngestError(
      'TRANSACTION_IN_PROGRESS',
      `The connection is already inside a transaction${status === 'E' ? ' (a failed one)' : ''}: ingest() runs one transaction per batch itself, so give it a connection with no transaction open`,
    );
  }
}

function assertBatchShape(batch: SourceBatch, batchNumber: number): void {
  if (!Array.isArray(batch) || batch.length !== 3) {
    throw invalidOption(`Batch ${batchNumber} must be a [highWatermark, metadata, rows] tuple`);
  }
  if (batch[2] instanceof EncodedRows) return;
  const rows = batch[2] as unknown as Record<symbol, unknown> | null;
  if (
    rows === null ||
    typeof rows !== 'object' ||
    !(Symbol.iterator in rows || Symbol.asyncIterator in rows)
  ) {
    throw invalidOption(
      `Batch ${batchNumber}: rows must be an iterable or async iterable of [table, values]`,
    );
  }
}
