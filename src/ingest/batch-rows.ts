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
import { EncodedRows, isCopyBlock, isPromiseLike, type RowSource, type SourceRow } from './encoded-rows.ts';
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

/** COPY data: text built line by line, or the bytes of a CopyBlock's lines. */
export type CopyChunk = string | Uint8Array;

/**
 * Runs one COPY. To place a COPY error: `firstTableRow` is the 1-based table row its first line
 * holds; `positions` gives the batch row of each line (filled while the COPY runs).
 */
export type CopyRunner = (
  writer: TableWriter,
  chunks: AsyncIterable<CopyChunk>,
  firstTableRow: number,
  positions: CopyLinePositions,
) => Promise<void>;

/** The lines of a CopyBlock, taken whole: `rows` rows from batch row `firstBatchRow` on. */
class BlockLines {
  constructor(
    readonly bytes: Uint8Array,
    readonly rows: number,
    readonly firstBatchRow: number,
  ) {}
}

/** Encoded lines of one table waiting for its next COPY (at most maxRowsPerTableBuffer). */
interface Buffer {
  readonly writer: TableWriter;
  /** Lines; BlockLines only as the first line of a batch of one table. */
  lines: (string | BlockLines)[];
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
  /**
   * The batch's only table, when CopyBlocks may be taken whole: with one table there is one
   * COPY, from the first row to the last, so a block's bytes can go straight into it. Not under
   * BadRows.QUARANTINE, which keeps each line.
   */
  readonly #blockTarget: Buffer | undefined;

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
    const only = this.#buffers.size === 1 ? [...this.#buffers.values()][0] : undefined;
    this.#blockTarget =
      only && only.writer.retained === undefined && refused === undefined ? only : undefined;
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
        const waiting = buffer.lines.reduce((n, line) => n + (line instanceof BlockLines ? line.rows : 1), 0);
        const firstTableRow = buffer.writer.rowCount - waiting + 1;
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

  async *#chunksFor(buffer: Buffer, positions: CopyLinePositions): AsyncGenerator<CopyChunk> {
    const opening = buffer.lines;
    const openingRows = buffer.batchRows;
    buffer.lines = [];
    buffer.batchRows = [];
    let chunk = '';
    // Every chunk is reported to the writer, even if the COPY stops early: under
    // BadRows.QUARANTINE it keeps every line (table-writer.ts).
    const writer = buffer.writer;
    try {
      const first = opening[0];
      if (first instanceof BlockLines) {
        positions.addLines(first.firstBatchRow, first.rows);
        yield first.bytes;
      } else {
        chunk = (opening as string[]).join('');
        for (const batchRow of openingRows) positions.add(batchRow);
      }
      while (!this.#done) {
        const next = this.#read();
        const routed = this.#route(isPromiseLike(next) ? await next : next);
        if (!routed) continue;
        const [target, line] = routed;
        if (line instanceof BlockLines) {
          // Only with one table: its COPY is this one.
          if (chunk.length > 0) {
            const full = chunk;
            chunk = '';
            writer.sent(full);
            yield full;
          }
          positions.addLines(line.firstBatchRow, line.rows);
          yield line.bytes;
        } else if (target === buffer) {
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
  #read(): IteratorResult<SourceRow | BlockLines> | PromiseLike<IteratorResult<SourceRow | BlockLines>> {
    if (this.#sync) {
      const result = this.#sync.next();
      if (!result.done || !this.#blocks) return result;
      this.#sync = undefined; // the block is used up
    }
    return this.#blocks ? this.#readBlock(this.#blocks) : (this.#async as AsyncIterator<Row>).next();
  }

  /** The first row of the next block that has one; or the block's lines, taken whole. */
  async #readBlock(
    blocks: AsyncIterator<Iterable<SourceRow>>,
  ): Promise<IteratorResult<SourceRow | BlockLines>> {
    for (;;) {
      const block = await blocks.next();
      if (block.done) return { done: true, value: undefined };
      const target = this.#blockTarget;
      if (target && isCopyBlock(block.value)) {
        const { writer } = target;
        const text = block.value.copyText(
          writer.table,
          writer.ordinalColumn ? writer.rowCount + 1 : undefined,
        );
        if (text?.rows === 0) continue;
        if (text) return { done: false, value: new BlockLines(text.bytes, text.rows, this.#batchRow + 1) };
      }
      this.#sync = block.value[Symbol.iterator]();
      const result = this.#sync.next();
      if (!result.done) return result;
    }
  }

  /** The buffer and encoded line for a row, or undefined at the end, for a table not ingested or a row quarantined. */
  #route(result: IteratorResult<SourceRow | BlockLines>): [Buffer, string | BlockLines] | undefined {
    if (result.done) {
      this.#done = true;
      return undefined;
    }
    const row = result.value;
    if (row instanceof BlockLines) {
      const target = this.#blockTarget as Buffer;
      this.#batchRow += row.rows;
      target.writer.countEncoded(row.rows);
      return [target, row];
    }
    this.#batchRow += 1;
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
