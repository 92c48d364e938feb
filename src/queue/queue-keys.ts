/**
 * Every Redis key of the queue is built here, and only here (as BullMQ's `queue-keys.ts`).
 *
 * Layout, for key prefix `p` (validated: no braces), stream `S` and batch id `B` (free text,
 * encoded by `keyPart` so that no two names ever share a key):
 *
 *   p:streams                     SET   every stream name this deployment has seen (not encoded)
 *   p:{S}:state                   HASH  the stream: epoch, epochs, runId, enqueuedSeq, committedSeq
 *                                       (mirror of PostgreSQL), committedEpoch, pendingBatches,
 *                                       pendingBytes, lastHighWatermark, committedHighWatermark,
 *                                       committedAt, blockedSeq/Reason/At, lastError/At,
 *                                       kickPending (a kick sent, no drain started since)
 *   p:{S}:batch:<seq>             STRING the batch header (JSON)
 *   p:{S}:part:<upload>:<i>       STRING part i of the rows of one upload (JSON array of wire rows)
 *   p:{S}:batchid:<B>             STRING "<seq> <content hash>", with a TTL: the idempotency window
 *
 * Why the braces: Redis Cluster puts keys with the same `{hash tag}` in the same slot, and a Lua
 * script may only touch keys of one slot. Every script touches one stream's keys, so each stream
 * is one hash tag; the registry `p:streams` is written by a separate, idempotent command.
 * BullMQ's own keys get a hash-tagged prefix too (`bullmqPrefix`), as BullMQ requires for Cluster.
 */
import { PgBulkIngestError } from '../errors.ts';

/**
 * A name as it appears inside a key: `%`, `{`, `}`, `:` and control characters (< 0x100) are
 * percent-encoded, everything else is kept (readable keys in redis-cli). Injective, because `%`
 * itself is encoded; and a `}` can never end the hash tag early.
 */
export function keyPart(name: string): string {
  return name.replace(/[%{}:\p{Cc}]/gu, (c) => `%${c.charCodeAt(0).toString(16).padStart(2, '0')}`);
}

/** Why `prefix` cannot start keys (braces would break the hash tags); undefined when it can. */
export function prefixProblem(prefix: string): string | undefined {
  if (prefix.length === 0) return 'expected a non-empty string';
  if (/[{}]/.test(prefix)) return 'no "{" or "}" (they are Redis Cluster hash tags)';
  return undefined;
}

/** Throws INVALID_CONFIG unless `prefix` can start keys. */
export function checkPrefix(prefix: string): string {
  const problem = prefixProblem(prefix);
  if (problem !== undefined)
    throw new PgBulkIngestError('INVALID_CONFIG', `Redis key prefix ${JSON.stringify(prefix)}: ${problem}`);
  return prefix;
}

/** BullMQ's key prefix for a deployment: one hash tag, so all its queue keys share a slot. */
export function bullmqPrefix(prefix: string): string {
  return `{${checkPrefix(prefix)}}`;
}

/** The keys of one stream. `base` is what the Lua scripts extend with `batch:<seq>`/`part:...`. */
export interface StreamKeys {
  readonly state: string;
  /** Ends with ':'; every key of the stream starts with it (same hash tag). */
  readonly base: string;
  batch(seq: number): string;
  part(uploadId: string, index: number): string;
  batchId(batchId: string): string;
}

export class QueueKeys {
  readonly prefix: string;
  readonly streams: string;

  constructor(prefix: string) {
    this.prefix = checkPrefix(prefix);
    this.streams = `${prefix}:streams`;
  }

  stream(stream: string): StreamKeys {
    const base = `${this.prefix}:{${keyPart(stream)}}:`;
    return {
      state: `${base}state`,
      base,
      batch: (seq) => `${base}batch:${seq}`,
      part: (uploadId, index) => `${base}part:${keyPart(uploadId)}:${index}`,
      batchId: (batchId) => `${base}batchid:${keyPart(batchId)}`,
    };
  }

  /** A SCAN pattern matching every key of one stream. */
  streamPattern(stream: string): string {
    return `${this.stream(stream).base.replace(/[*?[\]\\]/g, '\\$&')}*`;
  }
}
