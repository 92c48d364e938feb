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
import { EncodedRows, isPromiseLike, type RowSource, type SourceRow } from './encoded-rows.ts';
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

/** Encoded lines of one table waiting for its next COPY (at most maxRowsPerTableBuffer). */
interface Buffer {
  readonly writer: TableWriter;
  lines: string[];
  /** The batch row of each line, to place COPY errors. */
  batchRows: number[];
}

export class BatchRows {
  readonly #buffers: ReadonlyMap<IngestTable, Buffer>;
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
  #next: Buffer | undefined;

  /** Batch rows to reject unsent, with why (BadRows.QUARANTINE: the queue's validation refused them). */
  readonly #refused: ReadonlyMap<number, string> | undefined;

  constructor(
    rows: RowSource,
    writers: ReadonlyMap<IngestTable, TableWriter>,
    maxBuffered: number,
    refused?: ReadonlyMap<number, string>,
  ) {
    this.#buffers = new Map(
      [...writers].map(([table, writer]) => [table, { writer, lines: [], batchRows: [] }]),
    );
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
        const buffer = this.#next ?? this.#firstBuffered() ?? (await this.#bufferNextRow());
        if (buffer === undefined) return;
        this.#next = undefined;
        const positions = new CopyLinePositions();
        const firstTableRow = buffer.writer.rowCount - buffer.lines.length + 1;
        await runCopy(buffer.writer, this.#chunksFor(buffer, positions), firstTableRow, positions);
      }
    } finally {
      // Let the caller's generator clean up if we stopped early (a failed COPY, a bad row).
      if (!this.#done) {
        this.#sync?.return?.();
        await (this.#async?.return?.() ?? this.#blocks?.return?.());
      }
    }
  }

  #firstBuffered(): Buffer | undefined {
    for (const buffer of this.#buffers.values()) if (buffer.lines.length > 0) return buffer;
    return undefined;
  }

  /** Reads rows until one belongs to a known table, and buffers it. */
  async #bufferNextRow(): Promise<Buffer | undefined> {
    while (!this.#done) {
      const next = this.#read();
      const routed = this.#route(isPromiseLike(next) ? await next : next);
      if (routed) {
        routed[0].lines.push(routed[1]);
        routed[0].batchRows.push(this.#batchRow);
        return routed[0];
      }
    }
    return undefined;
  }

  async *#chunksFor(buffer: Buffer, positions: CopyLinePositions): AsyncGenerator<string> {
    let chunk = buffer.lines.join('');
    for (const batchRow of buffer.batchRows) positions.add(batchRow);
    buffer.lines = [];
    buffer.batchRows = [];
    // Every chunk is reported to the writer, even if the COPY stops early: under
    // BadRows.QUARANTINE it keeps every line (table-writer.ts).
    const writer = buffer.writer;
    try {
      while (!this.#done) {
        const next = this.#read();
        const routed = this.#route(isPromiseLike(next) ? await next : next);
        if (!routed) continue;
        const [target, line] = routed;
        if (target === buffer) {
          positions.add(this.#batchRow);
          chunk += line;
          if (chunk.length >= CHUNK_CHARS) {
            const full = chunk;
            chunk = '';
            writer.sent(full);
            yield full;
          }
        } else {
          target.lines.push(line);
          target.batchRows.push(this.#batchRow);
          if (target.lines.length >= this.#maxBuffered) {
            this.#next = target;
            break;
          }
        }
      }
      if (chunk.length > 0) {
        const last = chunk;
        chunk = '';
        writer.sent(last);
        yield last;
      }
    } finally {
      if (chunk.length > 0) writer.sent(chunk);
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

  /** The buffer and encoded line for a row, or undefined at the end, for a table not ingested or a row quarantined. */
  #route(result: IteratorResult<SourceRow>): [Buffer, string] | undefined {
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
    const buffer = this.#buffers.get(row[0]);
    if (!buffer) return undefined;
    const writer = buffer.writer;
    const refused = this.#refused?.get(this.#batchRow);
    if (refused !== undefined) {
      writer.reject(row[1], this.#batchRow, refused);
      return undefined;
    }
    // No line: the row was quarantined while encoding (BadRows.QUARANTINE); read on.
    const line = writer.encode(row[1], this.#batchRow);
    return line === undefined ? undefined : [buffer, line];
  }
}
