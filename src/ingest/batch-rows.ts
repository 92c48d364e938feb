/**
 * Routes a batch's rows, possibly interleaved across tables, into COPY statements on one
 * connection. Only one COPY can run on a connection at a time, so:
 *
 * - the rows of the table whose COPY is open stream straight into it (no buffering: memory
 *   stays bounded whatever the batch size);
 * - rows of other tables wait in that table's buffer, at most `maxRowsPerTableBuffer` rows;
 *   when a buffer fills, the open COPY ends and one for the full table starts with its buffer;
 * - at the end, what is left in the buffers is flushed, one COPY per table.
 *
 * A batch of one table is therefore one COPY, streamed from the first row to the last.
 */
import { RowError } from '../errors.ts';
import { CopyLinePositions } from './copy-line-positions.ts';
import { EncodedRows, type RowSource, type SourceRow } from './encoded-rows.ts';
import type { Row } from './options.ts';
import type { IngestTable } from './table-definition.ts';
import type { TableWriter } from './table-writer.ts';

/**
 * COPY data is sent in chunks of about this many characters: fewer, larger writes are faster, up
 * to a point. A chunk is a string built line by line; turning it into bytes for the socket first
 * flattens it, and a string of 64 Ki two-byte characters or more lands in V8's large-object space,
 * where that costs several times more (measured: 64 Ki made ingest() about twice as slow).
 */
const CHUNK_CHARS = 16 * 1024;

/**
 * Runs one COPY. To place a COPY error: `firstTableRow` is the 1-based table row its first line
 * holds; `positions` gives the batch row of each line (filled while the COPY runs).
 */
export type CopyRunner = (
  writer: TableWriter,
  chunks: AsyncIterable<string>,
  firstTableRow: number,
  positions: CopyLinePositions,
) => Promise<void>;

export class BatchRows {
  readonly #writers: ReadonlyMap<IngestTable, TableWriter>;
  readonly #maxBuffered: number;
  /** Rows given as a sync iterable; or the rows of the current block of EncodedRows. */
  #sync: Iterator<SourceRow> | undefined;
  /** Rows given as an async iterable. */
  readonly #async: AsyncIterator<Row> | undefined;
  /** Rows given as EncodedRows. */
  readonly #blocks: AsyncIterator<Iterable<SourceRow>> | undefined;
  #done = false;
  #batchRow = 0;
  /** Set when a buffer filled: the table whose COPY must run next. */
  #next: TableWriter | undefined;

  /** Batch rows to reject unsent, with why (BadRows.QUARANTINE: the queue's validation refused them). */
  readonly #refused: ReadonlyMap<number, string> | undefined;

  constructor(
    rows: RowSource,
    writers: ReadonlyMap<IngestTable, TableWriter>,
    maxBuffered: number,
    refused?: ReadonlyMap<number, string>,
  ) {
    this.#writers = writers;
    this.#refused = refused;
    this.#maxBuffered = maxBuffered;
    if (rows instanceof EncodedRows) this.#blocks = rows.blocks[Symbol.asyncIterator]();
    else if (Symbol.asyncIterator in rows) this.#async = rows[Symbol.asyncIterator]();
    else this.#sync = rows[Symbol.iterator]();
  }

  /** Runs COPYs until every row is written. Rows of tables not given to `ingest` are skipped. */
  async copyAll(runCopy: CopyRunner): Promise<void> {
    try {
      for (;;) {
        const writer = this.#next ?? this.#firstBuffered() ?? (await this.#bufferNextRow());
        if (writer === undefined) return;
        this.#next = undefined;
        const positions = new CopyLinePositions();
        const firstTableRow = writer.rowCount - writer.pending.length + 1;
        await runCopy(writer, this.#chunksFor(writer, positions), firstTableRow, positions);
      }
    } finally {
      // Let the caller's generator clean up if we stopped early (a failed COPY, a bad row).
      if (!this.#done) {
        this.#sync?.return?.();
        await (this.#async?.return?.() ?? this.#blocks?.return?.());
      }
    }
  }

  #firstBuffered(): TableWriter | undefined {
    for (const writer of this.#writers.values()) if (writer.pending.length > 0) return writer;
    return undefined;
  }

  /** Reads rows until one belongs to a known table, and buffers it. */
  async #bufferNextRow(): Promise<TableWriter | undefined> {
    while (!this.#done) {
      const next = this.#read();
      const routed = this.#route(isPromiseLike(next) ? await next : next);
      if (routed) {
        routed[0].pending.push(routed[1]);
        routed[0].pendingBatchRows.push(this.#batchRow);
        return routed[0];
      }
    }
    return undefined;
  }

  async *#chunksFor(writer: TableWriter, positions: CopyLinePositions): AsyncGenerator<string> {
    let chunk = writer.pending.join('');
    for (const batchRow of writer.pendingBatchRows) positions.add(batchRow);
    writer.pending = [];
    writer.pendingBatchRows = [];
    // Under BadRows.QUARANTINE every encoded line is kept (table-writer.ts), even if the COPY stops early.
    const kept = writer.retained?.chunks;
    try {
      while (!this.#done) {
        const next = this.#read();
        const routed = this.#route(isPromiseLike(next) ? await next : next);
        if (!routed) continue;
        const [target, line] = routed;
        if (target === writer) {
          positions.add(this.#batchRow);
          chunk += line;
          if (chunk.length >= CHUNK_CHARS) {
            const full = chunk;
            chunk = '';
            kept?.push(full);
            yield full;
          }
        } else {
          target.pending.push(line);
          target.pendingBatchRows.push(this.#batchRow);
          if (target.pending.length >= this.#maxBuffered) {
            this.#next = target;
            break;
          }
        }
      }
      if (chunk.length > 0) {
        const last = chunk;
        chunk = '';
        kept?.push(last);
        yield last;
      }
    } finally {
      if (chunk.length > 0) kept?.push(chunk);
    }
  }

  /** The next row: at once when it is at hand (sync rows, the current block), else a promise. */
  #read(): IteratorResult<SourceRow> | PromiseLike<IteratorResult<SourceRow>> {
    if (this.#sync) {
      const result = this.#sync.next();
      if (!result.done || !this.#blocks) return result;
      this.#sync = undefined; // the block is used up
    }
    return this.#blocks ? this.#readBlock(this.#blocks) : (this.#async as AsyncIterator<Row>).next();
  }

  /** The first row of the next block that has one. */
  async #readBlock(blocks: AsyncIterator<Iterable<SourceRow>>): Promise<IteratorResult<SourceRow>> {
    for (;;) {
      const block = await blocks.next();
      if (block.done) return { done: true, value: undefined };
      this.#sync = block.value[Symbol.iterator]();
      const result = this.#sync.next();
      if (!result.done) return result;
    }
  }

  /** The writer and encoded line for a row, or undefined at the end, for a table not ingested or a row quarantined. */
  #route(result: IteratorResult<SourceRow>): [TableWriter, string] | undefined {
    if (result.done) {
      this.#done = true;
      return undefined;
    }
    this.#batchRow += 1;
    const row = result.value;
    if (!Array.isArray(row) || row.length !== 2) {
      throw new RowError(`Row ${this.#batchRow} of the batch is not a [table, values] pair`, {
        row: this.#batchRow,
      });
    }
    const writer = this.#writers.get(row[0]);
    if (!writer) return undefined;
    const refused = this.#refused?.get(this.#batchRow);
    if (refused !== undefined) {
      writer.reject(row[1], this.#batchRow, refused);
      return undefined;
    }
    // No line: the row was quarantined while encoding (BadRows.QUARANTINE); read on.
    const line = writer.encode(row[1], this.#batchRow);
    return line === undefined ? undefined : [writer, line];
  }
}

function isPromiseLike<T>(value: T | PromiseLike<T>): value is PromiseLike<T> {
  return typeof (value as PromiseLike<T>).then === 'function';
}
