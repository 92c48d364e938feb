/**
 * The tables of one batch, one object each: what the table is and what the batch does to it
 * (prepare-table.ts), where its rows go (the table, its replacement, or a staging table merged
 * into either), and the writer that encodes them. ingest-batch.ts runs the steps in order; each
 * step over the tables lives here.
 */
import type pg from 'pg';
import type { BatchContext } from './ingest-batch.ts';
import { logSwap } from './ingest-log.ts';
import { createStagingTable, mergeStagedRows, ordinalColumnName, stagingTableName } from './merge.ts';
import { type Delete, type SchemaChanges, Upsert } from './options.ts';
import { buildIndexes, type PreparedTable, prepareTable } from './prepare-table.ts';
import { renameReplacementIndexes } from './rename-indexes.ts';
import { qualifiedName, quoteIdent } from './sql.ts';
import { replaceTable } from './swap/replace-table.ts';
import type { IngestTable } from './table-definition.ts';
import { TableWriter } from './table-writer.ts';

export interface BatchTable {
  /** The batch's definition of the table, and the relation its rows end in. */
  readonly prepared: PreparedTable;
  /** Upsert on a table with a primary key: the temporary table its rows are COPYed into, then merged. */
  readonly staging: Staging | undefined;
  readonly writer: TableWriter;
}

export interface Staging {
  /** Unqualified: the table lives in `pg_temp`, dropped at commit. */
  readonly name: string;
  /** Its extra leading column: the row's position among the table's rows of the batch. */
  readonly ordinalColumn: string;
}

/**
 * The first batch of an ingest creates, migrates or replaces each table (prepare-table.ts); a
 * later one writes to the tables as they are.
 */
export async function prepareTables(
  client: pg.ClientBase,
  tables: readonly IngestTable[],
  first:
    | { readonly delete: Delete; readonly schemaChanges: SchemaChanges; readonly inPlaceFirst: boolean }
    | undefined,
): Promise<PreparedTable[]> {
  const prepared: PreparedTable[] = [];
  for (const table of tables) {
    prepared.push(
      first
        ? await prepareTable(client, table, first.delete, first.schemaChanges, first.inPlaceFirst)
        : { table, builtFrom: table, relationName: table.name, buildIndexes: false, replacesLive: false },
    );
  }
  return prepared;
}

/** Each prepared table with its writer, and its staging table (created here) when the batch upserts into it. */
export async function openBatchTables(
  client: pg.ClientBase,
  prepared: readonly PreparedTable[],
  upsert: Upsert,
  quarantine: boolean,
): Promise<BatchTable[]> {
  const tables: BatchTable[] = [];
  for (const [i, p] of prepared.entries()) {
    if (upsert === Upsert.IF_PRIMARY_KEY && p.table.primaryKey.length > 0) {
      const staging = { name: stagingTableName(i), ordinalColumn: ordinalColumnName(p.table) };
      await createStagingTable(client, p.table, staging.name, staging.ordinalColumn);
      const target = `pg_temp.${quoteIdent(staging.name)}`;
      tables.push({
        prepared: p,
        staging,
        writer: new TableWriter(p.table, target, staging.ordinalColumn, quarantine),
      });
    } else {
      const target = qualifiedName(p.table.schema, p.relationName);
      tables.push({
        prepared: p,
        staging: undefined,
        writer: new TableWriter(p.table, target, undefined, quarantine),
      });
    }
  }
  return tables;
}

/** Upsert: each staging table that received rows, merged into its target. */
export async function mergeStaged(client: pg.ClientBase, tables: readonly BatchTable[]): Promise<void> {
  for (const { prepared, staging, writer } of tables) {
    if (staging && writer.rowCount > 0) {
      await mergeStagedRows(client, writer.table, staging.name, staging.ordinalColumn, prepared.relationName);
    }
  }
}

/** What the swaps of a batch did to other sessions. */
export interface Swaps {
  readonly cancelledBackends: number;
  readonly terminatedBackends: number;
}

/**
 * Indexes on tables created in this batch (built after the load: faster; before it when
 * isolating bad rows, `indexesBuilt`, so a duplicate key fails on its row), then replacements swapped in.
 */
export async function finishNewTables(
  client: pg.ClientBase,
  tables: readonly BatchTable[],
  context: BatchContext,
  indexesBuilt = false,
): Promise<Swaps> {
  let cancelledBackends = 0;
  let terminatedBackends = 0;
  for (const { prepared: p } of tables) {
    if (!p.buildIndexes) continue;
    if (!indexesBuilt) await buildIndexes(client, p);
    if (!p.replacesLive) continue;
    const swap = await replaceTable(
      client,
      { schema: p.table.schema, name: p.table.name, replacementName: p.relationName },
      context.options.blockingBackends,
    );
    logSwap(context.options.logger, context.batchNumber, p.table, swap);
    cancelledBackends += swap.cancelledBackends;
    terminatedBackends += swap.terminatedBackends;
    // The swap kept the table's comment; the first table's is rewritten with the high watermark later.
    await renameReplacementIndexes(client, p.table.schema, p.table.name, p.relationName);
  }
  return { cancelledBackends, terminatedBackends };
}
