/**
 * A CSV or NDJSON file (or stdin) into a stream, in batches, and the rule for its high watermark:
 * what `pg-bulk-ingest enqueue` and producers/file-producer.ts both run.
 *
 * The high watermark of each batch is the position in the file after its last row:
 * `{"file": "orders.csv", "line": 1200, "bytes": 53211, "sha256": "<of those 53211 bytes>"}`.
 * Running again on the same file, enqueued whole or in part (a run stopped by a bad line, a
 * crash, Ctrl-C), or on that file grown since (an append-only log), enqueues only the rows after
 * that position: a re-run never sends a row twice, so a table without a primary key gets no
 * duplicates. The file is recognised by its content, not its name: a file whose first `bytes`
 * bytes differ (a new export under the same name) is enqueued from its first line. Stdin cannot
 * be checked nor read twice: it is always enqueued whole. `Delete.BEFORE_FIRST_BATCH` replaces
 * the table with the whole file, so it also reads from the first line. A stream whose watermark
 * is not such a position (another producer's) is refused rather than overwritten.
 * docs/operations.md, "Enqueueing a file", says the same for users.
 */
import { createHash, type Hash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { basename } from 'node:path';
import { z } from 'zod';
import { PgBulkIngestError } from '../errors.ts';
import { stringifyJson } from '../ingest/exact-json.ts';
import { type Batch, Delete, type Json, type Row } from '../ingest/options.ts';
import { type BatchOptions, tableKey } from '../queue/batch-contract.ts';
import type { EnqueueResult, Producer } from '../queue/producer.ts';
import { type FileRow, type FileRowsOptions, openInput, readFileRows } from './file-rows.ts';

/** Where a file enqueue got to: the high watermark of each batch it enqueues. */
export type FilePosition = {
  /** The file's name (without its folder), or `stdin`: for people; the content identifies it. */
  readonly file: string;
  /** The last line enqueued. */
  readonly line: number;
  /** Bytes of the file enqueued: every row ending at or before this offset. */
  readonly bytes: number;
  /** SHA-256 of those bytes, hex. */
  readonly sha256: string;
};

/** Rows per batch unless told. */
export const DEFAULT_FILE_BATCH_ROWS = 10_000;

const filePositionSchema = z.strictObject({
  file: z.string(),
  line: z.number().int().min(1),
  bytes: z.number().int().min(1),
  sha256: z.string().regex(/^[0-9a-f]{64}$/),
});

export interface FileEnqueueOptions {
  /** The file, or `-` for stdin. */
  readonly path: string;
  /** How to read it: the table, format, delimiter, ... (its `source` and `after` are set here). */
  readonly read: Omit<FileRowsOptions, 'source' | 'after'>;
  /** Rows per batch; each batch commits atomically on its own. @default DEFAULT_FILE_BATCH_ROWS (10000) */
  readonly batchRows?: number;
  /** Metadata of every batch. @default null */
  readonly metadata?: Json;
  /** As for `producer.ingest()`: `delete` applies to the first batch of the file only. @default {} */
  readonly batchOptions?: Partial<BatchOptions>;
  /** @default "<schema>.<name>" of the table */
  readonly stream?: string;
  /** Called after each row is read, and with `batchDone` after each batch is enqueued. */
  readonly onProgress?: (progress: FileEnqueueProgress, batchDone: boolean) => void;
}

export interface FileEnqueueProgress {
  /** The path, or `stdin`: how errors name the input. */
  readonly source: string;
  readonly stream: string;
  readonly rows: number;
  readonly batches: number;
  readonly bytesRead: number;
}

export interface FileEnqueueSummary {
  /** The path, or `stdin`: how errors name the input. */
  readonly source: string;
  readonly stream: string;
  /** Rows enqueued by this run. */
  readonly rows: number;
  readonly results: readonly EnqueueResult[];
  /** The stream's position before this run, if it had one. */
  readonly previous: FilePosition | undefined;
  /**
   * Where this run started: after `previous` (`resumed`: the same file, enqueued up to there), or
   * at the first line: the stream had no position (`new`), its position is in other content
   * (`other-content`), the input is stdin (`stdin`), or the table is replaced (`delete`).
   */
  readonly start: 'resumed' | 'new' | 'other-content' | 'stdin' | 'delete';
}

/** Enqueues the rows of the file after the stream's position (see the header), `batchRows` rows a batch. */
export async function enqueueFile(
  producer: Producer,
  options: FileEnqueueOptions,
): Promise<FileEnqueueSummary> {
  const source = options.path === '-' ? 'stdin' : options.path;
  const stream = options.stream ?? tableKey(options.read.table);
  const previous = positionOf(await producer.highWatermark(options.read.table, stream), stream, source);
  const start = await startOf(options, previous);
  const reader = new FileBatches(options, source, stream, start === 'resumed' ? previous : undefined);
  try {
    await reader.open();
    const deleteMode = start === 'resumed' ? Delete.OFF : options.batchOptions?.delete;
    const results = await producer.ingest([options.read.table], () => reader.batches(), {
      ...options.batchOptions,
      ...(deleteMode === undefined ? {} : { delete: deleteMode }),
      stream,
    });
    return { source, stream, rows: reader.progress.rows, results, previous, start };
  } finally {
    await reader.close(); // closes the input when a batch failed half-read
  }
}

/** Where to start reading: after the previous position only if the file still starts with its bytes. */
async function startOf(
  options: FileEnqueueOptions,
  previous: FilePosition | undefined,
): Promise<FileEnqueueSummary['start']> {
  if (previous === undefined) return 'new';
  if (options.path === '-') return 'stdin';
  if ((options.batchOptions?.delete ?? Delete.OFF) !== Delete.OFF) return 'delete';
  return (await startsWith(options.path, previous)) ? 'resumed' : 'other-content';
}

/**
 * The file's rows after `resumeFrom`, as the batches of `producer.ingest()`: each batch's rows are
 * read as the producer uploads them (never a whole batch in memory), and its high watermark is
 * the position after its last row.
 */
class FileBatches {
  readonly progress: { source: string; stream: string; rows: number; batches: number; bytesRead: number };
  readonly #options: FileEnqueueOptions;
  readonly #source: string;
  readonly #resumeFrom: FilePosition | undefined;
  readonly #prefix: PrefixHash;
  readonly #rows: AsyncIterator<FileRow>;
  #next: IteratorResult<FileRow> = { done: true, value: undefined };
  #last: FileRow | undefined;
  /** A bad first row of the next batch, met looking ahead: this batch is enqueued, then it is thrown. */
  #failure: unknown;

  constructor(
    options: FileEnqueueOptions,
    source: string,
    stream: string,
    resumeFrom: FilePosition | undefined,
  ) {
    this.#options = options;
    this.#source = source;
    this.#resumeFrom = resumeFrom;
    this.progress = { source, stream, rows: 0, batches: 0, bytesRead: 0 };
    this.#prefix = new PrefixHash(resumeFrom?.bytes ?? 0);
    this.#rows = readFileRows(this.#prefix.tap(openInput(options.path)), {
      ...options.read,
      source,
      after: resumeFrom?.bytes ?? 0,
    })[Symbol.asyncIterator]();
  }

  /** Reads up to the first row to enqueue; when resuming, checks the bytes read past are still the same. */
  async open(): Promise<void> {
    this.#next = await this.#rows.next();
    const from = this.#resumeFrom;
    if (from && this.#prefix.digestAt(from.bytes) !== from.sha256) {
      throw new PgBulkIngestError(
        'INVALID_OPTIONS',
        `${this.#source} changed while it was read: its first ${from.bytes} bytes are no longer those enqueued up to line ${from.line}. Nothing was enqueued; run again.`,
        { stream: this.progress.stream },
      );
    }
  }

  async *batches(): AsyncGenerator<Batch> {
    // The watermark is called once the batch's rows are read: the position after its last row.
    const position = (): FilePosition => this.#positionAfter(this.#last as FileRow);
    while (!this.#next.done) {
      yield [position, this.#options.metadata ?? null, this.#batch()];
      this.progress.batches += 1;
      this.#options.onProgress?.(this.progress, true);
    }
    if (this.#failure !== undefined) throw this.#failure;
  }

  async close(): Promise<void> {
    await this.#rows.return?.(undefined);
  }

  async *#batch(): AsyncGenerator<Row> {
    const batchRows = this.#options.batchRows ?? DEFAULT_FILE_BATCH_ROWS;
    for (let n = 0; n < batchRows && !this.#next.done; n++) {
      const row = this.#next.value;
      this.#last = row;
      yield [this.#options.read.table, row.values];
      this.#prefix.reached(row.end);
      this.progress.rows += 1;
      this.progress.bytesRead = this.#prefix.bytesRead;
      this.#options.onProgress?.(this.progress, false);
      try {
        this.#next = await this.#rows.next();
      } catch (error) {
        if (n + 1 < batchRows) throw error; // the bad row is this batch's: none of it is enqueued
        this.#failure = error;
        this.#next = { done: true, value: undefined };
      }
    }
  }

  #positionAfter(row: FileRow): FilePosition {
    const file = this.#options.path === '-' ? 'stdin' : basename(this.#options.path);
    return { file, line: row.lastLine, bytes: row.end, sha256: this.#prefix.digestAt(row.end) };
  }
}

/** The stream's high watermark as a file position; refused when it is something else. */
function positionOf(watermark: Json | null, stream: string, source: string): FilePosition | undefined {
  if (watermark === null) return undefined;
  const parsed = filePositionSchema.safeParse(watermark);
  if (parsed.success) return parsed.data;
  throw new PgBulkIngestError(
    'INVALID_OPTIONS',
    `Stream ${stream} has the high watermark ${stringifyJson(watermark)}, which is not a file position ({"file", "line", "bytes", "sha256"}): another producer writes this stream, and enqueueing ${source} would replace its watermark. Enqueue the file into a stream of its own (--stream).`,
    { stream },
  );
}

/** Whether the file's first `position.bytes` bytes are the ones enqueued (read once more, hashed). */
async function startsWith(path: string, position: FilePosition): Promise<boolean> {
  const hash = createHash('sha256');
  let length = 0;
  for await (const chunk of createReadStream(path, { end: position.bytes - 1 })) {
    hash.update(chunk as Buffer);
    length += (chunk as Buffer).length;
  }
  return length === position.bytes && hash.digest('hex') === position.sha256;
}

/**
 * The SHA-256 of the input's first bytes, at offsets asked for in increasing order, computed as
 * the input is read. Chunks are hashed as soon as no digest can be asked for before their end
 * (`reached`), so what is held is the reader's read-ahead, not a batch.
 */
class PrefixHash {
  readonly #hash: Hash = createHash('sha256');
  #hashed = 0;
  #pending: Buffer[] = [];
  #safe: number;
  bytesRead = 0;

  /** `safe`: no digest will be asked for before this offset. */
  constructor(safe: number) {
    this.#safe = safe;
  }

  async *tap(input: AsyncIterable<Buffer | string>): AsyncGenerator<Buffer> {
    for await (const data of input) {
      const chunk = typeof data === 'string' ? Buffer.from(data) : data;
      this.#pending.push(chunk);
      this.bytesRead += chunk.length;
      this.#hashThrough(this.#safe);
      yield chunk;
    }
  }

  /** No digest will be asked for before `offset`. */
  reached(offset: number): void {
    this.#safe = offset;
  }

  digestAt(offset: number): string {
    this.#hashThrough(offset);
    return this.#hashed === offset ? this.#hash.copy().digest('hex') : '';
  }

  #hashThrough(offset: number): void {
    while (this.#hashed < offset && this.#pending.length > 0) {
      const chunk = this.#pending[0] as Buffer;
      const take = Math.min(chunk.length, offset - this.#hashed);
      this.#hash.update(take === chunk.length ? chunk : chunk.subarray(0, take));
      this.#hashed += take;
      if (take === chunk.length) this.#pending.shift();
      else this.#pending[0] = chunk.subarray(take);
    }
  }
}
