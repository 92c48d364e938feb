/**
 * The producing side of the queue: validates a batch, stores it in Redis under the next
 * sequence number of its stream (atomically, see redis-scripts.ts), and kicks the workers.
 */
import { createHash, type Hash, randomUUID } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import { Queue } from 'bullmq';
import type { Redis } from 'ioredis';
import { PgBulkIngestError } from '../errors.ts';
import { isPromiseLike } from '../ingest/encoded-rows.ts';
import { stringifyJson } from '../ingest/exact-json.ts';
import {
  BadRows,
  type Batches,
  Delete,
  HighWatermark,
  type Json,
  type JsonInput,
  type Row,
  type Rows,
} from '../ingest/options.ts';
import { parseOptions } from '../ingest/parse-options.ts';
import { assertStorableJson } from '../ingest/storable-json.ts';
import type { IngestTable, TableDefinitionInput } from '../ingest/table-definition.ts';
import {
  BATCH_FORMAT_VERSION,
  type BatchOptions,
  batchOptionsSchema,
  InvalidBatchError,
  MAX_BATCH_ID_LENGTH,
  MAX_STREAM_LENGTH,
  nameProblem,
  parseBatchJob,
  tableKey,
  toTableDefinitionInput,
} from './batch-contract.ts';
import { CLOSE_ARRAY, COMMA, OPEN_ARRAY } from './json-chars.ts';
import {
  type ProducerOptions,
  producerOptionsSchema,
  type ResolvedProducerOptions,
} from './producer-options.ts';
import { bullQueues, type KickData, kickStream } from './queue-config.ts';
import {
  type AppendResult,
  type BatchHeader,
  connectRedis,
  type EncodedHeader,
  encodeHeader,
  isRedisTimeout,
  type StreamInfo,
  StreamStore,
} from './stream-store.ts';
import { WireRowWriter } from './wire-row-writer.ts';

export interface EnqueueInput {
  readonly tables: readonly IngestTable[];
  /** JSON-encodable, or a function returning one, called after the rows were read. */
  readonly highWatermark: JsonInput | (() => JsonInput);
  /** Passed to `onBeforeVisible`; not stored. @default null */
  readonly metadata?: JsonInput;
  /** `[table, values]` pairs exactly as for `ingest()`; rows of tables not in `tables` are skipped. */
  readonly rows: Rows;
  /** `upsert`, `delete`, `visibility`, as for `ingest()`. @default { upsert: Upsert.IF_PRIMARY_KEY, delete: Delete.OFF, visibility: Visibility.AFTER_EACH_BATCH } */
  readonly options?: Partial<BatchOptions>;
  /** @default "<schema>.<name>" of the first table */
  readonly stream?: string;
  /** Idempotency key: the same batchId enqueued twice on a stream is enqueued once. @default a random UUID */
  readonly batchId?: string;
}

/** Options of `producer.ingest()`: those of `ingest()` that travel with a batch, and the stream. */
export interface ProducerIngestOptions extends Partial<BatchOptions> {
  /** Which high watermark `batches` is called with; `LATEST` is the last enqueued one still pending, else the committed one. @default HighWatermark.LATEST */
  readonly highWatermark?: Json;
  /** @default "<schema>.<name>" of the first table */
  readonly stream?: string;
}

export interface EnqueueResult {
  readonly stream: string;
  readonly seq: number;
  /** True when this batchId was already enqueued: nothing was added. */
  readonly duplicate: boolean;
}

/** Part buffers a Producer keeps for reuse (about as many as enqueues run at once). */
const MAX_SPARE_PART_BUFFERS = 16;

/** How full a stream was found; the append script reports only the bound it hit. */
interface PendingState {
  readonly pendingBatches?: number;
  readonly pendingBytes?: number;
}

type Appended = Extract<AppendResult, { kind: 'appended' | 'duplicate' }>;

/** Why the append script refused a batch, other than backpressure. */
function appendRefused(
  header: BatchHeader,
  result: Extract<AppendResult, { kind: 'conflict' | 'missing-part' }>,
): PgBulkIngestError {
  if (result.kind === 'conflict') {
    return new PgBulkIngestError(
      'BATCH_ID_CONFLICT',
      `Stream ${header.stream}: batchId "${header.batchId}" was enqueued before (as batch ${result.seq}) with other content. A batchId names one batch: use a new batchId for a different batch.`,
      { stream: header.stream, seq: result.seq },
    );
  }
  return new PgBulkIngestError(
    'PART_EXPIRED',
    `Stream ${header.stream}: part ${result.part} of the batch expired in Redis before the batch could be enqueued (the producer was too slow, or Redis restarted); enqueue it again`,
    { stream: header.stream },
  );
}

/** What an attempt under backpressure found: the stream full, or room and what was done with it. */
type RoomOr<T> = { readonly full: PendingState } | { readonly done: T };

/** Parts uploaded per round trip to Redis (see BYTES_PER_READ in apply-stream.ts). */
const PARTS_PER_WRITE = 16;

/**
 * Enqueues batches into Redis for the workers: `enqueue()` one batch, or `ingest()` with the same
 * `batches` function as the library's `ingest()`. Each resolves once its batches are safely in
 * Redis; a malformed batch is refused (InvalidBatchError) before anything is enqueued. `close()`
 * when done.
 */
export class Producer {
  readonly #redis: Redis;
  readonly #store: StreamStore;
  /** BullMQ's connection, apart from the store's (see Worker's #bullConnection for why). */
  readonly #bullConnection: Redis;
  readonly #queue: Queue<KickData>;
  readonly #options: ResolvedProducerOptions;
  readonly #writers = new WeakMap<IngestTable, WireRowWriter>();
  readonly #keepingWriters = new WeakMap<IngestTable, WireRowWriter>();
  /** Part buffers of finished enqueues, reused: a new one per batch was most of the garbage of small batches. */
  readonly #partBuffers: PartBuffer[] = [];
  readonly #definitions = new WeakMap<IngestTable, { input: TableDefinitionInput; json: string }>();

  constructor(options: ProducerOptions = {}) {
    this.#options = parseOptions(producerOptionsSchema, options);
    this.#redis = connectRedis(this.#options.redis, this.#options.redisTimeoutMs, true);
    this.#store = new StreamStore(this.#redis, this.#options.prefix);
    const queues = bullQueues(this.#options);
    this.#bullConnection = connectRedis(this.#options.redis, this.#options.redisTimeoutMs);
    this.#queue = new Queue<KickData>(queues.kicks, {
      connection: this.#bullConnection,
      prefix: queues.prefix,
    });
  }

  /** Enqueues one batch; resolves once it is safely in Redis. */
  async enqueue(input: EnqueueInput, label = 'Batch'): Promise<EnqueueResult> {
    const batchId = input.batchId ?? randomUUID();
    try {
      return await this.#enqueue({ ...input, batchId }, label);
    } catch (error) {
      if (isRedisTimeout(error)) {
        throw new PgBulkIngestError(
          'REDIS_UNAVAILABLE',
          `${label}: Redis did not answer within ${this.#options.redisTimeoutMs} ms (down or unreachable). Enqueue it again with batchId "${batchId}": if this attempt got through after all, the retry is reported as a duplicate, and nothing is enqueued twice (as long as Redis keeps its data: see docs/queue.md, "Redis losing data").`,
          {},
          { cause: error },
        );
      }
      throw error;
    }
  }

  async #enqueue(input: EnqueueInput & { batchId: string }, label: string): Promise<EnqueueResult> {
    const tables = input.tables;
    if (!Array.isArray(tables) || tables.length === 0)
      throw new InvalidBatchError(`${label}: tables must be a non-empty array`, {});
    const options = batchOptionsSchema.parse(input.options ?? {});
    const stream = input.stream ?? tableKey(tables[0] as IngestTable);
    const batchId = input.batchId;
    for (const [what, name, max] of [
      ['stream name', stream, MAX_STREAM_LENGTH],
      ['batchId', batchId, MAX_BATCH_ID_LENGTH],
    ] as const) {
      const problem = nameProblem(name, max);
      if (problem)
        throw new InvalidBatchError(`${label}: the ${what} ${JSON.stringify(name)} ${problem}`, {});
    }
    // Refused before anything is written: a value JSON (or jsonb) cannot hold would be
    // acknowledged, then fail at the worker. A callable watermark is checked once called.
    const watermarkLabel = `${label}: the high watermark`;
    assertStorableJson(input.metadata ?? null, `${label}: the metadata`, { stream });
    if (typeof input.highWatermark !== 'function')
      assertStorableJson(input.highWatermark, watermarkLabel, { stream });
    const uploadId = randomUUID();
    const content = createHash('sha256');
    const refusedRows: [number, string][] = [];
    const { parts, rows, bytes, inlinePart } = await this.#uploadRows(
      stream,
      uploadId,
      tables,
      input.rows,
      label,
      content,
      options.badRows === BadRows.QUARANTINE
        ? (row, reason) => {
            if (refusedRows.length <= options.maxBadRows) refusedRows.push([row, reason]);
          }
        : undefined,
    );
    const header: BatchHeader = {
      version: BATCH_FORMAT_VERSION,
      stream,
      batchId,
      uploadId,
      tables: tables.map((t) => this.#definitionOf(t).input),
      // Like ingest(), a callable watermark is called after the batch's rows were read.
      highWatermark: typeof input.highWatermark === 'function' ? input.highWatermark() : input.highWatermark,
      metadata: input.metadata ?? null,
      options,
      parts,
      rows,
      bytes,
      enqueuedAt: Date.now(),
      ...(refusedRows.length > 0 ? { refusedRows } : {}),
    } as BatchHeader; // a Date watermark travels as its ISO string (stringifyJson, as toJSON does)
    // A callable watermark, now called, is checked now (a plain one was, before the rows).
    if (typeof input.highWatermark === 'function') {
      try {
        assertStorableJson(header.highWatermark, watermarkLabel, { stream });
      } catch (error) {
        if (inlinePart === undefined)
          await this.#store.deleteParts(stream, uploadId, parts).catch(() => undefined);
        throw error;
      }
    }
    const encoded = encodeHeader(header, this.#tablesJson(tables));
    // The idempotency key's fingerprint: everything the batch says, rows included.
    content.update(encoded.content);
    // Parts stay (with their TTL) if this fails: the script may have run before the error.
    return this.#append(header, encoded, content.digest('base64url'), inlinePart);
  }

  /** Enqueues a batch already in the wire format (the gateway and the CLI use this). */
  async enqueueJob(input: unknown, label = 'Batch'): Promise<EnqueueResult> {
    const { job, tables } = parseBatchJob(input, label);
    const byKey = new Map(tables.map((t) => [tableKey(t), t]));
    // Values are already wire-encoded and validated; pass them through unchanged.
    const rows = job.rows.map(([key, values]) => [byKey.get(key) as IngestTable, values] as const);
    return this.enqueue(
      {
        tables,
        highWatermark: job.highWatermark,
        metadata: job.metadata,
        rows,
        options: job.options,
        ...(job.stream ? { stream: job.stream } : {}),
        ...(job.batchId ? { batchId: job.batchId } : {}),
      },
      label,
    );
  }

  /** The queue twin of `ingest()`: the same `batches` function, one enqueued batch per batch. */
  async ingest(
    tables: readonly IngestTable[],
    batches: Batches,
    options: ProducerIngestOptions = {},
  ): Promise<EnqueueResult[]> {
    const { highWatermark = HighWatermark.LATEST, stream, ...batchOptions } = options;
    const start =
      highWatermark === HighWatermark.LATEST
        ? await this.highWatermark(tables[0] as IngestTable, stream)
        : highWatermark === HighWatermark.EARLIEST
          ? null
          : highWatermark;
    const results: EnqueueResult[] = [];
    let n = 0;
    for await (const [hw, metadata, rows] of batches(start)) {
      n += 1;
      results.push(
        await this.enqueue(
          {
            tables,
            highWatermark: hw,
            metadata: (metadata ?? null) as Json,
            rows,
            // As in ingest(), Delete.BEFORE_FIRST_BATCH empties the table before the first batch only.
            options: n === 1 ? batchOptions : { ...batchOptions, delete: Delete.OFF },
            ...(stream ? { stream } : {}),
          },
          `Batch ${n}`,
        ),
      );
    }
    return results;
  }

  /** The last enqueued high watermark still pending, else the last committed one (null if none). */
  async highWatermark(table: IngestTable, stream = tableKey(table)): Promise<Json | null> {
    const info = await this.#store.info(stream);
    return info.pendingBatches > 0 ? info.lastHighWatermark : info.committedHighWatermark;
  }

  async streamInfo(stream: string): Promise<StreamInfo> {
    return this.#store.info(stream);
  }

  async close(): Promise<void> {
    await this.#queue.close();
    this.#bullConnection.disconnect();
    this.#redis.disconnect();
  }

  /** A table's definition as batches carry it, and as JSON: made once per table object. */
  #definitionOf(table: IngestTable): { input: TableDefinitionInput; json: string } {
    let definition = this.#definitions.get(table);
    if (definition === undefined) {
      const input = toTableDefinitionInput(table);
      definition = { input, json: stringifyJson(input) };
      this.#definitions.set(table, definition);
    }
    return definition;
  }

  #tablesJson(tables: readonly IngestTable[]): string {
    return `[${tables.map((t) => this.#definitionOf(t).json).join(',')}]`;
  }

  async #append(
    header: BatchHeader,
    encoded: EncodedHeader,
    contentHash: string,
    inlinePart?: Buffer,
  ): Promise<EnqueueResult> {
    const result = await this.#whenRoom(header.stream, async (): Promise<RoomOr<Appended>> => {
      const result = await this.#store.append(
        header,
        encoded,
        contentHash,
        randomUUID(),
        this.#options,
        inlinePart,
      );
      if (result.kind === 'backpressure') return { full: result };
      if (result.kind === 'conflict' || result.kind === 'missing-part') throw appendRefused(header, result);
      return { done: result };
    });
    if (result.kick) await this.#kick(header.stream);
    return { stream: header.stream, seq: result.seq, duplicate: result.kind === 'duplicate' };
  }

  /**
   * Wakes a worker up for the stream. The batch is enqueued already: a kick that fails (Redis
   * out of memory, say) must not fail the enqueue, or the caller's retry would enqueue it
   * twice. Workers' sweep finds every stream with pending batches anyway.
   */
  async #kick(stream: string): Promise<void> {
    try {
      await kickStream(this.#queue, stream);
    } catch (error) {
      process.emitWarning(
        `pg-bulk-ingest: stream ${stream}: the batch is enqueued, but waking a worker failed (${(error as Error).message}); the workers' sweep will find it`,
      );
    }
  }

  /** Waits (or fails) before uploading anything while the stream is over its bound. */
  #waitForRoom(stream: string): Promise<void> {
    return this.#whenRoom(stream, async (): Promise<RoomOr<undefined>> => {
      const { pendingBatches, pendingBytes } = await this.#store.info(stream);
      const { maxPendingBatches, maxPendingBytes } = this.#options; // 0: no bound
      const full =
        (maxPendingBatches > 0 && pendingBatches >= maxPendingBatches) ||
        (maxPendingBytes > 0 && pendingBatches > 0 && pendingBytes >= maxPendingBytes);
      return full ? { full: { pendingBatches, pendingBytes } } : { done: undefined };
    });
  }

  /**
   * Backpressure: runs `attempt` until it finds room on the stream. While the stream is over its
   * bound (`attempt` says how full), waits with backoff for up to backpressureTimeoutMs, or fails
   * at once (onBackpressure 'fail'), with a BACKPRESSURE error.
   */
  async #whenRoom<T>(stream: string, attempt: () => Promise<RoomOr<T>>): Promise<T> {
    const deadline = Date.now() + this.#options.backpressureTimeoutMs;
    for (let wait = 10; ; wait = Math.min(wait * 2, 500)) {
      const outcome = await attempt();
      if ('done' in outcome) return outcome.done;
      if (this.#options.onBackpressure === 'fail' || Date.now() + wait > deadline)
        throw this.#backpressureError(stream, outcome.full);
      await sleep(wait);
    }
  }

  #backpressureError(stream: string, state: PendingState) {
    return new PgBulkIngestError(
      'BACKPRESSURE',
      `Stream ${stream} has too much pending (${state.pendingBatches ?? '?'} batches / ${state.pendingBytes ?? '?'} bytes; bounds ${this.#options.maxPendingBatches} batches, ${this.#options.maxPendingBytes} bytes): workers are behind or stopped. Retry later, or raise maxPendingBatches/maxPendingBytes.`,
      { stream },
    );
  }

  /**
   * A table's row writer, made once per table object (its converters are chosen per column);
   * `keepBadValues` (BadRows.QUARANTINE) gets a writer of its own.
   */
  #writerFor(table: IngestTable, keepBadValues: boolean): WireRowWriter {
    const cache = keepBadValues ? this.#keepingWriters : this.#writers;
    let writer = cache.get(table);
    if (writer === undefined) {
      writer = new WireRowWriter(table, keepBadValues);
      cache.set(table, writer);
    }
    return writer;
  }

  /**
   * Validates and encodes rows to wire JSON, uploading a part whenever it reaches partBytes. A
   * batch of one part (most small batches) is not uploaded: it travels inside the append script
   * (`inlinePart`), one round trip instead of two. A larger one waits for room under the
   * stream's backpressure bound before its first part is uploaded.
   */
  async #uploadRows(
    stream: string,
    uploadId: string,
    tables: readonly IngestTable[],
    rows: Rows,
    label: string,
    content: Hash,
    /** BadRows.QUARANTINE: a row with a value validation refuses is kept, and reported here. */
    onRefused?: (row: number, reason: string) => void,
  ) {
    const ttl = Math.max(3600, Math.ceil((this.#options.backpressureTimeoutMs * 2) / 1000));
    const writers = new Map(tables.map((t) => [t, this.#writerFor(t, onRefused !== undefined)]));
    const part = this.#partBuffers.pop() ?? new PartBuffer();
    let ready: Buffer[] = []; // finished parts not uploaded yet
    let parts = 0; // parts uploaded, or being uploaded
    let bytes = 0;
    let rowNumber = 0;
    let written = 0; // rows in the parts: the worker's numbering (rows of other tables are skipped)
    const upload = async () => {
      if (parts === 0) await this.#waitForRoom(stream);
      const first = parts;
      parts += ready.length;
      const batch = ready;
      ready = [];
      for (const part of batch) content.update(part);
      await this.#store.putParts(stream, uploadId, first, batch, ttl);
    };
    const finishPart = async () => {
      ready.push(part.take());
      if (ready.length >= PARTS_PER_WRITE) await upload();
    };
    // Rows given as a sync iterable are read without an await per row (as ingest() reads them):
    // awaiting each row cost more than writing it.
    const iterator: Iterator<Row> | AsyncIterator<Row> =
      Symbol.asyncIterator in rows ? rows[Symbol.asyncIterator]() : rows[Symbol.iterator]();
    let done = false;
    try {
      for (;;) {
        const next = iterator.next();
        const result = isPromiseLike(next) ? await next : next;
        if (result.done) {
          done = true;
          break;
        }
        const row = result.value;
        rowNumber += 1;
        const writer = writers.get(row[0]);
        if (writer === undefined) continue; // as in ingest(): rows of other tables are skipped
        const text = writer.write(row[1], label, rowNumber);
        written += 1;
        if (writer.problem !== undefined) onRefused?.(written, writer.problem);
        // A row that would take the part well past partBytes starts the next part.
        if (part.rows > 0 && !part.fits(text, this.#options.partBytes + 64 * 1024)) await finishPart();
        bytes += part.add(text);
        if (bytes > this.#options.maxBatchBytes) {
          throw new PgBulkIngestError(
            'BATCH_TOO_LARGE',
            `${label} is larger than maxBatchBytes (${this.#options.maxBatchBytes} bytes) at row ${rowNumber}: split it into smaller batches (each batch commits atomically), or raise maxBatchBytes`,
            { row: rowNumber },
          );
        }
        if (part.bytes >= this.#options.partBytes) await finishPart();
      }
      if (part.rows > 0 || parts + ready.length === 0) await finishPart();
      if (parts === 0 && ready.length === 1) {
        const inlinePart = ready[0] as Buffer;
        content.update(inlinePart);
        return { parts: 1, rows: written, bytes, inlinePart };
      }
      if (ready.length > 0) await upload();
    } catch (error) {
      await this.#store.deleteParts(stream, uploadId, parts).catch(() => undefined);
      throw error;
    } finally {
      // As `for await` would: a source stopped early (a bad row, a full stream) gets to clean up;
      // the error that stopped it is the one reported.
      if (!done) await Promise.resolve(iterator.return?.()).catch(() => undefined);
      part.clear();
      // A buffer grown for one huge row is left to the garbage collector.
      if (this.#partBuffers.length < MAX_SPARE_PART_BUFFERS && part.capacity <= this.#options.partBytes * 4)
        this.#partBuffers.push(part);
    }
    return { parts, rows: written, bytes, inlinePart: undefined };
  }
}

/**
 * One part of a batch's rows being filled: the JSON array `[row,row,...]` as UTF-8, written row
 * by row into one buffer. Each row's string dies at once, instead of living (and being copied
 * by the garbage collector) until the part is joined and encoded for Redis.
 */
class PartBuffer {
  /** Starts small (most batches are small) and doubles as rows come. */
  #buffer = Buffer.allocUnsafe(4096);
  /** Bytes written, the opening `[` included. */
  bytes = 1;
  rows = 0;

  constructor() {
    this.#buffer[0] = OPEN_ARRAY;
  }

  /**
   * Whether a row surely fits in `limit` bytes, by default what is allocated (UTF-8 takes at
   * most 3 bytes per UTF-16 unit), with `,` and `]`.
   */
  fits(row: string, limit = this.#buffer.length): boolean {
    return this.bytes + row.length * 3 + 2 <= limit;
  }

  /** Appends a row; returns its size in bytes. */
  add(row: string): number {
    if (!this.fits(row)) {
      const bigger = Buffer.allocUnsafe(Math.max(this.#buffer.length * 2, this.bytes + row.length * 3 + 2));
      this.#buffer.copy(bigger, 0, 0, this.bytes);
      this.#buffer = bigger;
    }
    if (this.rows > 0) this.#buffer[this.bytes++] = COMMA;
    const written = this.#buffer.write(row, this.bytes);
    this.bytes += written;
    this.rows += 1;
    return written;
  }

  /** The finished part (a copy), and an empty part to fill next. */
  take(): Buffer {
    this.#buffer[this.bytes++] = CLOSE_ARRAY;
    const part = Buffer.from(this.#buffer.subarray(0, this.bytes));
    this.clear();
    return part;
  }

  get capacity(): number {
    return this.#buffer.length;
  }

  /** Empty again (its memory kept, to be filled by the next batch). */
  clear(): void {
    this.bytes = 1;
    this.rows = 0;
  }
}
