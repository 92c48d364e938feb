/**
 * The COPY step of a batch (ingest-batch.ts): the rows through BatchRows into their tables'
 * COPYs, each COPY error placed on its table, row and column; under `BadRows.QUARANTINE`, a COPY
 * that a row's data fails leaves the batch going, every row still read and kept for isolation.
 */
import type pg from 'pg';
import { asDatabaseError, RowError } from '../errors.ts';
import { badRowSqlState } from './bad-rows.ts';
import { BatchRows, type CopyChunk } from './batch-rows.ts';
import { copyErrorPosition, copyInto } from './copy-into.ts';
import type { CopyLinePositions } from './copy-line-positions.ts';
import type { RowSource } from './encoded-rows.ts';
import type { BatchContext } from './ingest-batch.ts';
import { qualifiedName } from './sql.ts';
import type { IngestTable } from './table-definition.ts';
import type { TableWriter } from './table-writer.ts';

/**
 * COPYs the batch's rows. Under QUARANTINE a COPY that a row's data fails (class 22/23) does
 * not fail the batch: the rest of the rows are still read (and kept, for isolation), none sent,
 * and the error is returned.
 */
export async function copyRows(
  client: pg.ClientBase,
  context: BatchContext,
  writers: readonly TableWriter[],
  rows: RowSource,
  quarantine: boolean,
): Promise<unknown> {
  let badRow: unknown;
  const refused = quarantine ? context.hooks?.refusedRows : undefined;
  const batchRows = new BatchRows(
    rows,
    writersByTable(writers),
    context.options.maxRowsPerTableBuffer,
    refused,
  );
  await batchRows.copyAll(async (writer, chunks, row, positions) => {
    if (badRow !== undefined) return drain(chunks); // keep reading: every row must be kept
    if (!quarantine) return copyWithPosition(client, writer, chunks, row, positions, context.batchNumber);
    const source = new StoppableChunks(chunks);
    try {
      await copyWithPosition(client, writer, source.chunks(), row, positions, context.batchNumber);
    } catch (error) {
      if (badRowSqlState(error) === undefined) throw error;
      badRow = error;
      await source.drain();
    }
  });
  return badRow;
}

function writersByTable(writers: readonly TableWriter[]): Map<IngestTable, TableWriter> {
  return new Map(writers.map((w) => [w.table, w]));
}

async function drain(chunks: AsyncIterable<CopyChunk>): Promise<void> {
  for await (const _ of chunks);
}

/**
 * The chunks of a COPY that may fail on a bad row, read to their end all the same. A failed COPY
 * makes `pipeline` close its source, possibly while a read is still in flight: the rows'
 * generator would then be closed under that read, and reading the rest meanwhile would run two
 * readers of the batch's rows at once (whole blocks of rows were lost that way). So the COPY
 * gets a wrapper whose closing leaves the generator alone; `drain` waits for the read in flight,
 * then reads the rest (each line kept by the writer, none COPYed).
 */
class StoppableChunks {
  readonly #source: AsyncIterator<CopyChunk>;
  #stopped = false;
  #inFlight: Promise<IteratorResult<CopyChunk>> | undefined;

  constructor(chunks: AsyncIterable<CopyChunk>) {
    this.#source = chunks[Symbol.asyncIterator]();
  }

  async *chunks(): AsyncGenerator<CopyChunk> {
    for (;;) {
      this.#inFlight = this.#source.next();
      const result = await this.#inFlight;
      if (result.done || this.#stopped) return;
      yield result.value;
    }
  }

  async drain(): Promise<void> {
    this.#stopped = true;
    if (this.#inFlight && (await this.#inFlight).done) return;
    for (;;) if ((await this.#source.next()).done) return;
  }
}

/** Runs one COPY and, if PostgreSQL refuses a value, names the table, row and column. */
async function copyWithPosition(
  client: pg.ClientBase,
  writer: TableWriter,
  chunks: AsyncIterable<CopyChunk>,
  firstTableRow: number,
  positions: CopyLinePositions,
  batchNumber: number,
): Promise<void> {
  try {
    await copyInto(client, writer.copySql, chunks);
  } catch (error) {
    const db = asDatabaseError(error);
    if (!db) throw error;
    const columns = [
      ...(writer.ordinalColumn ? [writer.ordinalColumn] : []),
      ...writer.table.columns.map((c) => c.name),
    ];
    const { line, column: columnInWhere } = copyErrorPosition(db.where, columns);
    if (line === undefined) throw error;
    // A NOT NULL violation names its column in the error's own field, not in the context line.
    const column =
      columnInWhere ?? (db.column !== undefined && columns.includes(db.column) ? db.column : undefined);
    const table = qualifiedName(writer.table.schema, writer.table.name);
    const tableRow = firstTableRow + line - 1;
    const batchRow = positions.batchRowOf(line);
    const where =
      batchRow === undefined
        ? `row ${tableRow} of ${table}`
        : `row ${batchRow} of the batch (row ${tableRow} of ${table})`;
    throw new RowError(
      `Batch ${batchNumber}: ${where}${column ? `, column "${column}"` : ''}: ${db.message} (SQLSTATE ${db.code})`,
      {
        table,
        batch: batchNumber,
        row: batchRow ?? tableRow,
        ...(column ? { column } : {}),
        sqlState: db.code,
      },
      { cause: error },
    );
  }
}
