/**
 * The Producer's options: the type users write (with each default in its JSDoc, for the editor)
 * and the zod schema that owns each check and default. `new Producer()` parses its options with
 * the schema; the producing commands' settings (src/ops/cli/producer-settings.ts), their
 * `--help` and docs/operations.md take their defaults from it; test/unit/option-schemas.test.ts
 * checks that the JSDoc says the schema's defaults.
 */
import type { RedisOptions } from 'ioredis';
import type { z } from 'zod';
import { integer, oneOf } from '../ingest/parse-options.ts';
import { type QueueNames, queueNamesSchema, redisOption } from './queue-config.ts';

export interface ProducerOptions extends QueueNames {
  /** Redis URL or ioredis options. @default 'redis://127.0.0.1:6379' (the CLI and gateway read REDIS_URL) */
  readonly redis?: string | RedisOptions;
  /** Most batches waiting per stream before producers wait (or fail); 0 for no bound. @default 1000 */
  readonly maxPendingBatches?: number;
  /** Most bytes of rows waiting per stream before producers wait (or fail); 0 for no bound. @default 268435456 (256 MiB) */
  readonly maxPendingBytes?: number;
  /** Under backpressure: wait for room, or fail at once with a BACKPRESSURE error. @default 'wait' */
  readonly onBackpressure?: 'wait' | 'fail';
  /** How long to wait for room before failing with BACKPRESSURE. @default 60000 */
  readonly backpressureTimeoutMs?: number;
  /**
   * Rows are stored in parts of about this size, so no Redis value is huge, and a worker holds a
   * few parts of a batch in memory at a time, never the batch. @default 49152 (48 KiB)
   */
  readonly partBytes?: number;
  /** Largest batch accepted; a larger one is refused with BATCH_TOO_LARGE. @default 536870912 (512 MiB) */
  readonly maxBatchBytes?: number;
  /**
   * How long a batchId is remembered (the idempotency window): a retried enqueue within it is not
   * enqueued twice. One small key per batch for this long. @default 86400 (24 hours)
   */
  readonly batchIdTtlSeconds?: number;
  /**
   * How long a Redis command may go unanswered before the enqueue fails with REDIS_UNAVAILABLE
   * (Redis down or unreachable); 0 waits for Redis to come back. @default 0
   */
  readonly redisTimeoutMs?: number;
}

/** Each option's check and default. */
export const producerOptionsSchema = queueNamesSchema.extend({
  redis: redisOption,
  maxPendingBatches: integer(0).default(1000),
  maxPendingBytes: integer(0).default(256 * 1024 * 1024),
  onBackpressure: oneOf({ wait: 'wait', fail: 'fail' }).default('wait'),
  backpressureTimeoutMs: integer(0).default(60_000),
  partBytes: integer(1).default(48 * 1024),
  maxBatchBytes: integer(1).default(512 * 1024 * 1024),
  batchIdTtlSeconds: integer(1).default(24 * 3600),
  redisTimeoutMs: integer(0).default(0),
});

export type ResolvedProducerOptions = z.output<typeof producerOptionsSchema>;
