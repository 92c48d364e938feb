/**
 * Isolating the rows PostgreSQL refuses, under `BadRows.QUARANTINE` (docs/under-the-hood.md,
 * "Bad rows"). PostgreSQL 15 stops a COPY at its first bad row and has no ON_ERROR, so a batch
 * is first tried as it always is, inside a savepoint: a clean batch costs what it costs with
 * `BadRows.FAIL`. Only when that attempt fails with SQLSTATE class 22 or 23 does the batch go
 * back to the savepoint and come here, with every line it sent kept (table-writer.ts):
 *
 * - COPY: each table's lines again, in a savepoint. A failure that names its line ("COPY t,
 *   line L") rejects that row; the lines before it, known good, are COPYed again, and the rest
 *   tried on. A failure that names no line (a foreign key, checked at the end of the statement)
 *   splits the lines in halves, each tried alone, down to the one row that fails.
 * - Merge (upsert through a staging table): if the merge fails, the staged rows are merged by
 *   halves of their ordinals, in order, down to single rows; a key's last good row wins.
 *
 * Rows are tried in slices (about 16 per table, at least 1,000 rows each), every attempt in a
 * savepoint released on success, so what passed stays and what failed leaves nothing, and a bad
 * row costs its slice again rather than the rest of the table. With k bad rows the rows go
 * through COPY about 1 + 2k/16 times; bisection adds about 2·log2(slice) statements per bad row.
 */
import type pg from 'pg';
import { asDatabaseError, BatchError, type DatabaseErrorLike, RowError } from '../errors.ts';
import type { BatchTable, Staging } from './batch-tables.ts';
import { copyErrorPosition, copyInto } from './copy-into.ts';
import type { BatchContext } from './ingest-batch.ts';
import { mergeStagedRows } from './merge.ts';
import { buildIndexes } from './prepare-table.ts';
import type { RejectedRow, RejectedRowOrigin } from './rejected-rows.ts';
import { qualifiedName, quoteIdent } from './sql.ts';
import type { IngestTable } from './table-definition.ts';
import type { TableWriter } from './table-writer.ts';

/** Characters per COPY chunk, as batch-rows.ts's CHUNK_CHARS (V8's large-object space). */
const CHUNK_CHARS = 16 * 1024;

/** The SQLSTATE of a refusal that a row's own data caused (class 22 or 23), or undefined. */
export function badRowSqlState(error: unknown): string | undefined {
  const code =
    error instanceof RowError || error instanceof BatchError
      ? error.context.sqlState
      : asDatabaseError(error)?.code;
  return code !== undefined && (code.startsWith('22') || code.startsWith('23')) ? code : undefined;
}

export class BadRowIsolation {
  readonly #client: pg.ClientBase;
  readonly #maxBadRows: number;
  /** Rows rejected before isolation started (values that could not be encoded). */
  readonly #rejectedBefore: number;
  readonly #batchNumber: number;
  readonly rejected: RejectedRow[] = [];
  /** Rows rejected per writer, to count what each table really received. */
  readonly rejectedPerWriter = new Map<TableWriter, number>();
  /** Statements tried (COPY or merge), for the bench and the docs' cost figures. */
  attempts = 0;

  constructor(client: pg.ClientBase, maxBadRows: number, rejectedBefore: number, batchNumber: number) {
    this.#client = client;
    this.#maxBadRows = maxBadRows;
    this.#rejectedBefore = rejectedBefore;
    this.#batchNumber = batchNumber;
  }

  /** COPYs all the writer's kept lines, rejecting the ones PostgreSQL refuses. */
  async copyTable(writer: TableWriter): Promise<void> {
    const lines = writer.retainedLines();
    const rows = Array.from({ length: lines.length }, (_, i) => i);
    for (const slice of slices(rows)) await this.#copyRows(writer, lines, slice);
  }

  async #copyRows(writer: TableWriter, lines: readonly string[], rows: readonly number[]): Promise<void> {
    let rest = rows;
    while (rest.length > 0) {
      const error = await this.#attempt(() => copyInto(this.#client, writer.copySql, chunksOf(lines, rest)));
      if (!error) return;
      const line = copyErrorPosition(error.where, copyColumns(writer)).line;
      if (line !== undefined && line >= 1 && line <= rest.length) {
        await this.#copyRows(writer, lines, rest.slice(0, line - 1)); // known good: one COPY
        this.#reject(writer, rest[line - 1] as number, error);
        rest = rest.slice(line);
      } else if (rest.length === 1) {
        this.#reject(writer, rest[0] as number, error);
        return;
      } else {
        const middle = rest.length >> 1;
        await this.#copyRows(writer, lines, rest.slice(0, middle));
        await this.#copyRows(writer, lines, rest.slice(middle));
        return;
      }
    }
  }

  /**
   * Merges a staging table into its target, rejecting the staged rows the merge refuses. Ordinal
   * i is the writer's kept line i - 1 (both count the rows the writer sent).
   */
  async mergeTable(writer: TableWriter, staging: Staging, target: string): Promise<void> {
    const ordinal = staging.ordinalColumn;
    const merge = (range?: readonly [number, number]) =>
      mergeStagedRows(this.#client, writer.table, staging.name, ordinal, target, range);
    if (!(await this.#attempt(() => merge()))) return;
    const stage = `pg_temp.${quoteIdent(staging.name)}`;
    // Ranges are merged in ordinal order, each keeping its key's last row (DISTINCT ON) and
    // updating what an earlier range wrote (ON CONFLICT): a key's last good row wins, as it would
    // in the batch without its bad rows.
    await this.#client.query(`CREATE INDEX ON ${stage} (${quoteIdent(ordinal)})`);
    const { rows } = await this.#client.query<{ o: string }>(
      `SELECT ${quoteIdent(ordinal)} AS o FROM ${stage} ORDER BY 1`,
    );
    for (const slice of slices(rows.map((r) => Number(r.o)))) await this.#mergeRows(writer, slice, merge);
  }

  async #mergeRows(
    writer: TableWriter,
    ordinals: readonly number[],
    merge: (range: readonly [number, number]) => Promise<unknown>,
  ): Promise<void> {
    if (ordinals.length === 0) return;
    const error = await this.#attempt(() => merge([ordinals[0] as number, ordinals.at(-1) as number]));
    if (!error) return;
    if (ordinals.length === 1) {
      this.#reject(writer, (ordinals[0] as number) - 1, error);
      return;
    }
    const middle = ordinals.length >> 1;
    await this.#mergeRows(writer, ordinals.slice(0, middle), merge);
    await this.#mergeRows(writer, ordinals.slice(middle), merge);
  }

  /**
   * Runs one statement in a savepoint: undefined when it passed (kept), the error when a row's
   * data made it fail (rolled back). Any other failure is the batch's, and is thrown.
   */
  async #attempt(statement: () => Promise<unknown>): Promise<DatabaseErrorLike | undefined> {
    this.attempts += 1;
    await this.#client.query('SAVEPOINT pgbi_rows');
    try {
      await statement();
    } catch (error) {
      if (badRowSqlState(error) === undefined) throw error;
      await this.#client.query('ROLLBACK TO SAVEPOINT pgbi_rows');
      await this.#client.query('RELEASE SAVEPOINT pgbi_rows');
      return asDatabaseError(error);
    }
    await this.#client.query('RELEASE SAVEPOINT pgbi_rows');
    return undefined;
  }

  #reject(writer: TableWriter, index: number, error: DatabaseErrorLike): void {
    const column = copyErrorPosition(error.where, copyColumns(writer)).column ?? error.column;
    const where = column ? `column "${column}": ` : '';
    this.rejected.push(writer.rejectedRow(index, error.code, `${where}${error.message}`));
    this.rejectedPerWriter.set(writer, (this.rejectedPerWriter.get(writer) ?? 0) + 1);
    const total = this.#rejectedBefore + this.rejected.length;
    if (total > this.#maxBadRows)
      throw tooManyBadRows(writer, total, this.#maxBadRows, this.#batchNumber, error);
  }
}

/** More rows refused than `maxBadRows`: a bad batch, not a few bad rows. Fails as with BadRows.FAIL. */
export function tooManyBadRows(
  writer: TableWriter,
  count: number,
  maxBadRows: number,
  batchNumber: number,
  last?: DatabaseErrorLike,
): BatchError {
  const table = qualifiedName(writer.table.schema, writer.table.name);
  return new BatchError(
    `Batch ${batchNumber}: more than maxBadRows (${maxBadRows}) rows refused (${count} so far, the last on ${table}${last ? `: ${last.message}, SQLSTATE ${last.code}` : ''}); the batch is rolled back`,
    { batch: batchNumber, table, ...(last ? { sqlState: last.code } : {}) },
    { retryable: false },
  );
}

/**
 * Rows are tried in about SLICES slices, each in its own savepoint, so a bad row costs its
 * slice again, not the rest of the table: with k bad rows about (1 + 2k / SLICES) times the rows
 * go through COPY, rather than twice. Not too many: each slice that writes is a subtransaction,
 * and past 64 in one transaction PostgreSQL's snapshots get slower for everyone (subxid overflow).
 */
const SLICES = 16;
const MIN_SLICE_ROWS = 1000;

function slices<T>(rows: readonly T[]): T[][] {
  const size = Math.max(MIN_SLICE_ROWS, Math.ceil(rows.length / SLICES));
  const result: T[][] = [];
  for (let i = 0; i < rows.length; i += size) result.push(rows.slice(i, i + size));
  return result;
}

function copyColumns(writer: TableWriter): string[] {
  const names = writer.table.columns.map((c) => c.name);
  return writer.ordinalColumn ? [writer.ordinalColumn, ...names] : names;
}

async function* chunksOf(lines: readonly string[], rows: readonly number[]): AsyncGenerator<string> {
  let chunk = '';
  for (const i of rows) {
    chunk += lines[i] as string;
    if (chunk.length >= CHUNK_CHARS) {
      yield chunk;
      chunk = '';
    }
  }
  if (chunk.length > 0) yield chunk;
}

/**
 * After the batch went back to its savepoint: every table's kept rows again, the refused ones
 * set aside (bad-rows.ts). Indexes of new tables first, so a duplicate key fails on its row.
 */
export async function isolateBadRows(
  client: pg.ClientBase,
  tables: readonly BatchTable[],
  context: BatchContext,
): Promise<BadRowIsolation> {
  const before = tables.reduce((n, t) => n + t.writer.rejected.length, 0);
  const isolation = new BadRowIsolation(client, context.options.maxBadRows, before, context.batchNumber);
  for (const { prepared } of tables) if (prepared.buildIndexes) await buildIndexes(client, prepared);
  for (const { writer } of tables) await isolation.copyTable(writer);
  for (const { prepared, staging, writer } of tables) {
    if (staging && writer.rowCount > 0) await isolation.mergeTable(writer, staging, prepared.relationName);
  }
  return isolation;
}

/** Rows refused while encoding count towards maxBadRows too. */
export function assertFewBadRows(writers: readonly TableWriter[], context: BatchContext): void {
  const count = writers.reduce((n, w) => n + w.rejected.length, 0);
  const last = writers.findLast((w) => w.rejected.length > 0);
  if (last && count > context.options.maxBadRows)
    throw tooManyBadRows(last, count, context.options.maxBadRows, context.batchNumber);
}

/** ingest()'s rejected rows: stream = the first table, no seq. */
export function ingestOrigin(context: BatchContext): (row: RejectedRow) => RejectedRowOrigin {
  const first = context.tables[0] as IngestTable;
  const stream = `${first.schema}.${first.name}`;
  return (row) => ({ stream, seq: null, rowNumber: row.batchRow });
}
