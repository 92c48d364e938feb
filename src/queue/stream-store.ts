/**
 * Where batches wait between producer and worker: Redis, in the layout of queue-keys.ts, changed
 * only by the scripts of redis-scripts.ts (and the block/error fields below). Headers and parts
 * are plain JSON strings, so any language can read them.
 */
import { Redis, type RedisOptions } from 'ioredis';
import { InvariantError } from '../errors.ts';
import { parseJson, stringifyJson } from '../ingest/exact-json.ts';
import type { Json } from '../ingest/options.ts';
import type { TableDefinitionInput } from '../ingest/table-definition.ts';
import type { BatchOptions } from './batch-contract.ts';
import { QueueKeys } from './queue-keys.ts';
import { APPEND_BATCH, MARK_COMMITTED, SET_BLOCKED } from './redis-scripts.ts';
import type { Epoch } from './stream-position.ts';

/** Everything about a stored batch but its rows. */
export interface BatchHeader {
  readonly version: number;
  /** The Redis epoch the batch was numbered in: set by the append script, absent before. */
  readonly epoch?: string;
  readonly stream: string;
  readonly batchId: string;
  /** The upload its parts belong to: `<stream keys>part:<uploadId>:<i>` (queue-keys.ts). */
  readonly uploadId: string;
  readonly tables: readonly TableDefinitionInput[];
  readonly highWatermark: Json;
  readonly metadata: Json;
  readonly options: BatchOptions;
  readonly parts: number;
  /** Rows stored in the parts (rows naming a table not in the batch are skipped, as by ingest()). */
  readonly rows: number;
  readonly bytes: number;
  /** Milliseconds since the epoch when the producer enqueued it. */
  readonly enqueuedAt: number;
  /**
   * BadRows.QUARANTINE: rows the Producer's validation would have refused for a value, let
   * through to be quarantined by the worker: `[row (1-based among the batch's rows), reason]`,
   * at most maxBadRows + 1 of them (one more fails the batch anyway).
   */
  readonly refusedRows?: readonly (readonly [number, string])[];
}

/**
 * A header as stored: its JSON text, and the JSON of the fields sent beside it. Built by
 * `encodeHeader`, whose text is `stringifyJson(header)` exactly (a unit test holds it to that),
 * from parts a producer computes once: `tables` is the same for every batch of a table.
 */
export interface EncodedHeader {
  readonly text: string;
  readonly highWatermark: string;
  /** `[tables, highWatermark, metadata, options]`: what the batch says besides its rows. */
  readonly content: string;
}

/**
 * A new batch's `header` as JSON; `tablesJson` is `stringifyJson(header.tables)`, which callers
 * cache. A new header has no epoch: the append script gives it one.
 */
export function encodeHeader(header: BatchHeader, tablesJson: string): EncodedHeader {
  if (header.epoch !== undefined) throw new InvariantError('A new batch header has no epoch yet');
  const highWatermark = stringifyJson(header.highWatermark);
  const metadata = stringifyJson(header.metadata);
  const options = stringifyJson(header.options);
  const text = [
    `{"version":${header.version}`,
    `"stream":${JSON.stringify(header.stream)}`,
    `"batchId":${JSON.stringify(header.batchId)}`,
    `"uploadId":${JSON.stringify(header.uploadId)}`,
    `"tables":${tablesJson}`,
    `"highWatermark":${highWatermark}`,
    `"metadata":${metadata}`,
    `"options":${options}`,
    `"parts":${header.parts}`,
    `"rows":${header.rows}`,
    `"bytes":${header.bytes}`,
    `"enqueuedAt":${header.enqueuedAt}`,
    ...(header.refusedRows === undefined ? [] : [`"refusedRows":${JSON.stringify(header.refusedRows)}`]),
  ].join(',');
  return {
    text: `${text}}`,
    highWatermark,
    content: `[${tablesJson},${highWatermark},${metadata},${options}]`,
  };
}

/** Part `index` of a batch's rows. */
export interface PartRef {
  readonly batch: BatchHeader;
  readonly index: number;
}

export interface StreamInfo {
  readonly stream: string;
  readonly enqueuedSeq: number;
  /** Redis's mirror of the committed seq; PostgreSQL's `stream_state` is the truth. */
  readonly committedSeq: number;
  readonly pendingBatches: number;
  readonly pendingBytes: number;
  readonly lastHighWatermark: Json | null;
  readonly committedHighWatermark: Json | null;
  readonly committedAt: number | null;
  readonly blocked: { seq: number; reason: string; at: number } | null;
  /** The last failure of a batch that is being retried (cleared by its commit). */
  readonly lastError: { reason: string; at: number } | null;
  /** Redis's epochs of the stream (stream-position.ts); empty if Redis never saw it. */
  readonly epochs: readonly Epoch[];
}

export type AppendResult =
  /** `kick`: no kick is pending for the stream, the caller must send one (APPEND_BATCH). */
  | { readonly kind: 'appended' | 'duplicate'; readonly seq: number; readonly kick: boolean }
  | { readonly kind: 'conflict'; readonly seq: number }
  | { readonly kind: 'backpressure'; readonly pendingBatches?: number; readonly pendingBytes?: number }
  | { readonly kind: 'missing-part'; readonly part: number };

export interface AppendLimits {
  readonly maxPendingBatches: number;
  readonly maxPendingBytes: number;
  readonly batchIdTtlSeconds: number;
}

type RedisWithScripts = Redis & {
  appendBatch(...args: (string | number | Buffer)[]): Promise<[number, number, number?]>;
  markCommitted(...args: (string | number)[]): Promise<number>;
  setBlocked(...args: (string | number)[]): Promise<number>;
};

/**
 * A Redis connection for the queue. `commandTimeoutMs` > 0 makes a command that gets no answer
 * within it (Redis down or unreachable) fail instead of waiting for Redis to come back.
 * `autoPipelining` sends the commands issued in one tick in one write (a producer's concurrent
 * enqueues): one syscall instead of one per command, the producer's largest CPU cost with small
 * batches.
 */
export function connectRedis(
  redis: string | RedisOptions,
  commandTimeoutMs = 0,
  autoPipelining = false,
): Redis {
  // maxRetriesPerRequest: null is what BullMQ requires of its connections; a command waits for
  // Redis to come back rather than failing after a few tries.
  const options: RedisOptions = {
    maxRetriesPerRequest: null,
    ...(commandTimeoutMs > 0 ? { commandTimeout: commandTimeoutMs } : {}),
    ...(autoPipelining ? { enableAutoPipelining: true } : {}),
  };
  return typeof redis === 'string' ? new Redis(redis, options) : new Redis({ ...options, ...redis });
}

/**
 * Whether `error` is ioredis giving up on a command after `commandTimeout` (Redis down or
 * unreachable). ioredis has no error class for it, only this message (Command.js,
 * `_setTimeout`); test/integration/redis-timeout.test.ts pins that behaviour, so an ioredis
 * upgrade that changes it fails there rather than silently here.
 */
export function isRedisTimeout(error: unknown): boolean {
  return error instanceof Error && error.message === 'Command timed out';
}

/** Stream hashes read per round trip when listing many streams. */
const INFO_BATCH = 500;

export class StreamStore {
  readonly redis: Redis;
  readonly keys: QueueKeys;
  readonly #redis: RedisWithScripts;

  constructor(redis: Redis, prefix: string) {
    this.redis = redis;
    this.keys = new QueueKeys(prefix);
    redis.defineCommand('appendBatch', { numberOfKeys: 3, lua: APPEND_BATCH });
    redis.defineCommand('markCommitted', { numberOfKeys: 2, lua: MARK_COMMITTED });
    redis.defineCommand('setBlocked', { numberOfKeys: 1, lua: SET_BLOCKED });
    this.#redis = redis as RedisWithScripts;
  }

  get prefix(): string {
    return this.keys.prefix;
  }

  /**
   * Uploads parts `first`, `first + 1`, ... of one upload of a batch's rows in one round trip,
   * each with a TTL until `append` makes it permanent.
   */
  async putParts(
    stream: string,
    uploadId: string,
    first: number,
    parts: readonly Buffer[],
    ttlSeconds: number,
  ): Promise<void> {
    const keys = this.keys.stream(stream);
    const pipeline = this.redis.pipeline();
    for (const [i, part] of parts.entries())
      pipeline.set(keys.part(uploadId, first + i), part, 'EX', ttlSeconds);
    const results = (await pipeline.exec()) ?? [];
    const failed = results.find(([error]) => error);
    if (failed) throw failed[0];
  }

  async deleteParts(stream: string, uploadId: string, parts: number): Promise<void> {
    const keys = this.keys.stream(stream);
    const all = Array.from({ length: parts }, (_, i) => keys.part(uploadId, i));
    for (let i = 0; i < all.length; i += 1000) await this.redis.del(...all.slice(i, i + 1000));
  }

  /**
   * Appends a batch whose parts are uploaded: one atomic script (see APPEND_BATCH). The stream
   * is registered first (idempotent, its own slot; a registered stream with nothing pending is
   * harmless). Both commands are issued in one tick: on an auto-pipelining connection (the
   * Producer's) they share one write with the other appends of that tick.
   */
  async append(
    header: BatchHeader,
    encoded: EncodedHeader,
    contentHash: string,
    newEpoch: string,
    limits: AppendLimits,
    inlinePart?: Buffer,
  ): Promise<AppendResult> {
    const keys = this.keys.stream(header.stream);
    const [, reply] = await Promise.all([
      this.redis.sadd(this.keys.streams, header.stream),
      this.#redis.appendBatch(
        keys.state,
        keys.batchId(header.batchId),
        keys.base,
        encoded.text,
        header.uploadId,
        header.parts,
        header.bytes,
        encoded.highWatermark,
        limits.maxPendingBatches,
        limits.maxPendingBytes,
        limits.batchIdTtlSeconds,
        contentHash,
        newEpoch,
        inlinePart ?? '',
      ),
    ]);
    const [code, value, kick] = reply;
    if (code === -1) return { kind: 'backpressure', pendingBatches: value };
    if (code === -2) return { kind: 'backpressure', pendingBytes: value };
    if (code === -3) return { kind: 'missing-part', part: value };
    if (code === -4) return { kind: 'conflict', seq: value };
    return { kind: value === 1 ? 'duplicate' : 'appended', seq: code, kick: kick === 1 };
  }

  async header(stream: string, seq: number): Promise<BatchHeader | null> {
    const text = await this.redis.get(this.keys.stream(stream).batch(seq));
    return text === null ? null : (parseJson(text) as BatchHeader);
  }

  /** Headers of batches `first` to `first + count - 1`, in one round trip; null where one is gone. */
  async headers(stream: string, first: number, count: number): Promise<(BatchHeader | null)[]> {
    const keys = this.keys.stream(stream);
    const texts = await this.redis.mget(Array.from({ length: count }, (_, i) => keys.batch(first + i)));
    return texts.map((text) => (text === null ? null : (parseJson(text) as BatchHeader)));
  }

  /**
   * Parts of batches of one stream (`PartRef`s), UTF-8 JSON (wire-part-bytes.ts or wire-part.ts reads them), in one
   * round trip; null for a part that is gone. As Buffers, outside V8's heap: the caller decodes
   * one at a time, when it needs it.
   */
  async partsOf(stream: string, refs: readonly PartRef[]): Promise<(Buffer | null)[]> {
    const keys = this.keys.stream(stream);
    return this.redis.mgetBuffer(refs.map(({ batch, index }) => keys.part(batch.uploadId, index)));
  }

  /** `seq` (of `epoch`) is committed in PostgreSQL: mirror it and free what it covers. */
  async markCommitted(
    stream: string,
    seq: number,
    epoch: string,
    highWatermark: Json | null,
    committedAt: number,
  ): Promise<void> {
    const keys = this.keys.stream(stream);
    await this.#redis.markCommitted(
      keys.state,
      keys.base,
      seq,
      epoch,
      stringifyJson(highWatermark),
      committedAt,
    );
  }

  /**
   * Sets the mirror of the committed high watermark (`rewind`): a producer using
   * HighWatermark.LATEST with nothing pending sends from it. The committed seq stays.
   */
  async setCommittedHighWatermark(stream: string, highWatermark: Json | null): Promise<void> {
    await this.redis.hset(
      this.keys.stream(stream).state,
      'committedHighWatermark',
      stringifyJson(highWatermark),
    );
  }

  /**
   * Blocks the stream at `seq`. False if it was already blocked (two workers parking the same
   * batch at once): only the first records its reason, so the batch is parked once.
   */
  async setBlocked(stream: string, seq: number, reason: string): Promise<boolean> {
    return (await this.#redis.setBlocked(this.keys.stream(stream).state, seq, reason, Date.now())) === 1;
  }

  async clearBlocked(stream: string): Promise<void> {
    await this.redis.hdel(this.keys.stream(stream).state, 'blockedSeq', 'blockedReason', 'blockedAt');
  }

  /** Records why the stream's next batch failed and will be retried (shown by `status`). */
  async setLastError(stream: string, reason: string): Promise<void> {
    await this.redis.hset(this.keys.stream(stream).state, 'lastError', reason, 'lastErrorAt', Date.now());
  }

  async clearLastError(stream: string): Promise<void> {
    await this.redis.hdel(this.keys.stream(stream).state, 'lastError', 'lastErrorAt');
  }

  async streams(): Promise<string[]> {
    const streams: string[] = [];
    let cursor = '0';
    do {
      const [next, found] = await this.redis.sscan(this.keys.streams, cursor, 'COUNT', 1000);
      cursor = next;
      streams.push(...found);
    } while (cursor !== '0');
    return streams.sort();
  }

  /**
   * The stream's state. `takeKick` (a drain's first read) also clears `kickPending`
   * (APPEND_BATCH), in the same round trip: a batch appended before the clear is in what this
   * returns; one appended after it sends a new kick.
   */
  async info(stream: string, options: { takeKick?: boolean } = {}): Promise<StreamInfo> {
    const state = this.keys.stream(stream).state;
    if (!options.takeKick) return parseInfo(stream, await this.redis.hgetall(state));
    const results = (await this.redis.pipeline().hdel(state, 'kickPending').hgetall(state).exec()) ?? [];
    for (const [error] of results) if (error) throw error;
    return parseInfo(stream, results[1]?.[1] as Record<string, string>);
  }

  /**
   * Many streams' info, INFO_BATCH hashes per round trip. A stream whose state cannot be read is
   * returned as an Error in its place: one broken stream never hides the others.
   */
  async infos(streams: readonly string[]): Promise<(StreamInfo | Error)[]> {
    const replies = await this.#perStream(streams, (pipeline, key) => pipeline.hgetall(key));
    return streams.map((stream, i) => {
      const [error, hash] = replies[i] ?? [new Error('no reply')];
      try {
        if (error) throw error;
        return parseInfo(stream, hash as Record<string, string>);
      } catch (e) {
        return new Error(`Stream ${stream}: its state in Redis cannot be read: ${(e as Error).message}`);
      }
    });
  }

  /** One command per stream's state hash, INFO_BATCH streams per round trip; the replies in order. */
  async #perStream(
    streams: readonly string[],
    command: (pipeline: ReturnType<Redis['pipeline']>, stateKey: string) => unknown,
  ): Promise<[Error | null, unknown][]> {
    const replies: [Error | null, unknown][] = [];
    for (let i = 0; i < streams.length; i += INFO_BATCH) {
      const pipeline = this.redis.pipeline();
      for (const stream of streams.slice(i, i + INFO_BATCH))
        command(pipeline, this.keys.stream(stream).state);
      replies.push(...((await pipeline.exec()) ?? []));
    }
    return replies;
  }

  /**
   * The streams with batches pending and no block: what the sweep kicks. Reads two fields per
   * stream, INFO_BATCH streams per round trip.
   */
  async streamsToKick(): Promise<string[]> {
    const streams = await this.streams();
    const replies = await this.#perStream(streams, (pipeline, key) =>
      pipeline.hmget(key, 'pendingBatches', 'blockedSeq'),
    );
    return streams.filter((_, i) => {
      const [pending, blocked] = (replies[i]?.[1] as (string | null)[] | undefined) ?? [];
      return Number(pending ?? 0) > 0 && blocked == null;
    });
  }

  /** Deletes every key of the stream (its batches too) and unregisters it. */
  async forget(stream: string): Promise<number> {
    const deleted = await deleteKeysMatching(this.redis, this.keys.streamPattern(stream));
    await this.redis.srem(this.keys.streams, stream);
    return deleted;
  }
}

/** Deletes every key matching the glob `pattern` (SCAN, about 1000 at a time); returns how many. */
export async function deleteKeysMatching(redis: Redis, pattern: string): Promise<number> {
  let deleted = 0;
  let cursor = '0';
  do {
    const [next, keys] = await redis.scan(cursor, 'MATCH', pattern, 'COUNT', 1000);
    cursor = next;
    if (keys.length > 0) deleted += await redis.del(...keys);
  } while (cursor !== '0');
  return deleted;
}

function parseInfo(stream: string, h: Record<string, string>): StreamInfo {
  const json = (text: string | undefined) => (text === undefined ? null : (parseJson(text) as Json));
  return {
    stream,
    enqueuedSeq: Number(h.enqueuedSeq ?? 0),
    committedSeq: Number(h.committedSeq ?? 0),
    pendingBatches: Math.max(0, Number(h.pendingBatches ?? 0)),
    pendingBytes: Math.max(0, Number(h.pendingBytes ?? 0)),
    lastHighWatermark: json(h.lastHighWatermark),
    committedHighWatermark: json(h.committedHighWatermark),
    committedAt: h.committedAt === undefined ? null : Number(h.committedAt),
    blocked:
      h.blockedSeq === undefined
        ? null
        : { seq: Number(h.blockedSeq), reason: h.blockedReason ?? '', at: Number(h.blockedAt ?? 0) },
    lastError: h.lastError === undefined ? null : { reason: h.lastError, at: Number(h.lastErrorAt ?? 0) },
    epochs: parseEpochs(h.epochs),
  };
}

/** Lua's cjson writes an empty list as `{}`: anything but a list is no epochs. */
function parseEpochs(text: string | undefined): Epoch[] {
  const value: unknown = text === undefined ? [] : JSON.parse(text);
  return Array.isArray(value) ? (value as Epoch[]) : [];
}
