/**
 * Where batches wait between producer and worker: Redis, in the layout described in
 * redis-scripts.ts. Headers and parts are plain JSON strings, so any language can read them.
 */
import { Redis, type RedisOptions } from 'ioredis';
import { parseJson, stringifyJson } from '../ingest/exact-json.ts';
import type { Json } from '../ingest/options.ts';
import type { TableDefinitionInput } from '../ingest/table-definition.ts';
import type { BatchOptions } from './batch-contract.ts';
import { APPEND_BATCH, MARK_COMMITTED } from './redis-scripts.ts';

/** Everything about a stored batch but its rows. */
export interface BatchHeader {
  readonly version: number;
  readonly stream: string;
  readonly batchId: string;
  readonly tables: readonly TableDefinitionInput[];
  readonly highWatermark: Json;
  readonly metadata: Json;
  readonly options: BatchOptions;
  /** Number of row parts stored under `p:part:<batchId>:<i>`. */
  readonly parts: number;
  readonly rows: number;
  readonly bytes: number;
  /** Milliseconds since the epoch when the producer enqueued it. */
  readonly enqueuedAt: number;
}

export interface StreamInfo {
  readonly stream: string;
  readonly enqueuedSeq: number;
  /** Redis's mirror of the committed seq; PostgreSQL's `stream_state` is the truth. */
  readonly committedSeq: number;
  readonly pendingBytes: number;
  readonly lastHighWatermark: Json | null;
  readonly committedHighWatermark: Json | null;
  readonly committedAt: number | null;
  readonly blocked: { seq: number; reason: string; at: number } | null;
}

export type AppendResult =
  | { readonly kind: 'appended' | 'duplicate'; readonly seq: number }
  | { readonly kind: 'backpressure'; readonly pendingBatches?: number; readonly pendingBytes?: number }
  | { readonly kind: 'missing-part'; readonly part: number };

export interface AppendLimits {
  readonly maxPendingBatches: number;
  readonly maxPendingBytes: number;
  readonly batchIdTtlSeconds: number;
}

type RedisWithScripts = Redis & {
  appendBatch(...args: (string | number)[]): Promise<[number, number]>;
  markCommitted(...args: (string | number)[]): Promise<number>;
};

/**
 * A Redis connection for the queue. `commandTimeoutMs` > 0 makes a command that gets no answer
 * within it (Redis down or unreachable) fail instead of waiting for Redis to come back.
 */
export function connectRedis(redis: string | RedisOptions, commandTimeoutMs = 0): Redis {
  // maxRetriesPerRequest: null is what BullMQ requires of its connections; a command waits for
  // Redis to come back rather than failing after a few tries.
  const options: RedisOptions = {
    maxRetriesPerRequest: null,
    ...(commandTimeoutMs > 0 ? { commandTimeout: commandTimeoutMs } : {}),
  };
  return typeof redis === 'string' ? new Redis(redis, options) : new Redis({ ...options, ...redis });
}

export class StreamStore {
  readonly redis: Redis;
  readonly prefix: string;
  readonly #redis: RedisWithScripts;

  constructor(redis: Redis, prefix: string) {
    this.redis = redis;
    this.prefix = prefix;
    redis.defineCommand('appendBatch', { numberOfKeys: 3, lua: APPEND_BATCH });
    redis.defineCommand('markCommitted', { numberOfKeys: 1, lua: MARK_COMMITTED });
    this.#redis = redis as RedisWithScripts;
  }

  #streamKey(stream: string) {
    return `${this.prefix}:stream:${stream}`;
  }

  partKey(batchId: string, part: number) {
    return `${this.prefix}:part:${batchId}:${part}`;
  }

  /**
   * Uploads parts `first`, `first + 1`, ... of a batch's rows in one round trip, each with a TTL
   * until `append` makes it permanent.
   */
  async putParts(
    batchId: string,
    first: number,
    parts: readonly Buffer[],
    ttlSeconds: number,
  ): Promise<void> {
    const pipeline = this.redis.pipeline();
    for (const [i, part] of parts.entries())
      pipeline.set(this.partKey(batchId, first + i), part, 'EX', ttlSeconds);
    const results = (await pipeline.exec()) ?? [];
    const failed = results.find(([error]) => error);
    if (failed) throw failed[0];
  }

  /** Appends a batch whose parts are uploaded: one atomic script (see APPEND_BATCH). */
  async append(header: Omit<BatchHeader, never>, limits: AppendLimits): Promise<AppendResult> {
    const [code, value] = await this.#redis.appendBatch(
      this.#streamKey(header.stream),
      `${this.prefix}:batchid:${header.stream}:${header.batchId}`,
      `${this.prefix}:streams`,
      header.stream,
      header.batchId,
      stringifyJson(header),
      header.parts,
      header.bytes,
      stringifyJson(header.highWatermark),
      limits.maxPendingBatches,
      limits.maxPendingBytes,
      limits.batchIdTtlSeconds,
      this.prefix,
    );
    if (code === -1) return { kind: 'backpressure', pendingBatches: value };
    if (code === -2) return { kind: 'backpressure', pendingBytes: value };
    if (code === -3) return { kind: 'missing-part', part: value };
    return { kind: value === 1 ? 'duplicate' : 'appended', seq: code };
  }

  async header(stream: string, seq: number): Promise<BatchHeader | null> {
    const text = await this.redis.get(`${this.#streamKey(stream)}:batch:${seq}`);
    return text === null ? null : (parseJson(text) as BatchHeader);
  }

  /**
   * Parts `first` to `first + count - 1` of a batch's rows, UTF-8 JSON (wire-part.ts reads them),
   * in one round trip; null for a part that is gone (the batch was committed meanwhile). As
   * Buffers, outside V8's heap: the caller decodes one at a time, when it needs it.
   */
  async parts(batchId: string, first: number, count: number): Promise<(Buffer | null)[]> {
    const keys = Array.from({ length: count }, (_, i) => this.partKey(batchId, first + i));
    return this.redis.mgetBuffer(keys);
  }

  async markCommitted(stream: string, seq: number, highWatermark: Json, committedAt: number): Promise<void> {
    await this.#redis.markCommitted(
      this.#streamKey(stream),
      stream,
      seq,
      stringifyJson(highWatermark),
      committedAt,
      this.prefix,
    );
  }

  /**
   * Blocks the stream at `seq`. False if it was already blocked (two workers parking the same
   * batch at once): only the first records its reason, so the batch is parked once.
   */
  async setBlocked(stream: string, seq: number, reason: string): Promise<boolean> {
    const key = this.#streamKey(stream);
    if ((await this.redis.hsetnx(key, 'blockedSeq', seq)) === 0) return false;
    await this.redis.hset(key, 'blockedReason', reason, 'blockedAt', Date.now());
    return true;
  }

  async clearBlocked(stream: string): Promise<void> {
    await this.redis.hdel(this.#streamKey(stream), 'blockedSeq', 'blockedReason', 'blockedAt');
  }

  async streams(): Promise<string[]> {
    return (await this.redis.smembers(`${this.prefix}:streams`)).sort();
  }

  async info(stream: string): Promise<StreamInfo> {
    const h = await this.redis.hgetall(this.#streamKey(stream));
    const json = (text: string | undefined) => (text === undefined ? null : (parseJson(text) as Json));
    return {
      stream,
      enqueuedSeq: Number(h.enqueuedSeq ?? 0),
      committedSeq: Number(h.committedSeq ?? 0),
      pendingBytes: Number(h.pendingBytes ?? 0),
      lastHighWatermark: json(h.lastHighWatermark),
      committedHighWatermark: json(h.committedHighWatermark),
      committedAt: h.committedAt === undefined ? null : Number(h.committedAt),
      blocked:
        h.blockedSeq === undefined
          ? null
          : { seq: Number(h.blockedSeq), reason: h.blockedReason ?? '', at: Number(h.blockedAt ?? 0) },
    };
  }
}
