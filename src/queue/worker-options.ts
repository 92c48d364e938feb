/**
 * The Worker's options: the type users write (with each default in its JSDoc, for the editor)
 * and the zod schema that owns each check and default. `new Worker()` parses its options with
 * the schema; the `worker` command's settings (src/ops/config.ts), its `--help` and
 * docs/operations.md take their defaults from it; test/unit/option-schemas.test.ts checks that
 * the JSDoc says the schema's defaults.
 */
import type { RedisOptions } from 'ioredis';
import { type Logger, pino } from 'pino';
import { z } from 'zod';
import type { BlockingBackendsOptions } from '../ingest/options.ts';
import { blockingBackendsSchema } from '../ingest/options-schema.ts';
import { callable, expecting, integer } from '../ingest/parse-options.ts';
import { type ApplyHooks, DEFAULT_COALESCE_LIMITS } from './apply-stream.ts';
import { databaseUrlOption, type QueueNames, queueNamesSchema, redisOption } from './queue-config.ts';

export interface WorkerOptions extends QueueNames {
  /** @default 'postgres://postgres@127.0.0.1:5432/postgres' (the `worker` command reads DATABASE_URL) */
  readonly databaseUrl?: string;
  /** @default 'redis://127.0.0.1:6379' (the `worker` command reads REDIS_URL) */
  readonly redis?: string | RedisOptions;
  /** Kicks (streams) worked on at once by this process. @default 2 */
  readonly concurrency?: number;
  /** Times a poison batch (bad data, constraint violation) is retried before it is parked. @default 3 */
  readonly poisonRetries?: number;
  /** First backoff between poison retries, doubled each time. @default 1000 */
  readonly poisonBackoffMs?: number;
  /** BullMQ lock duration of an active job; a dead worker's job is redelivered after it. @default 30000 */
  readonly lockDurationMs?: number;
  /** How often BullMQ looks for stalled jobs. @default 30000 */
  readonly stalledIntervalMs?: number;
  /** How often every stream with pending batches is kicked again, whatever happened to its kicks. @default 5000 */
  readonly sweepIntervalMs?: number;
  /** On close (SIGTERM): how long the current batches may take before they are abandoned (rolled back). @default 30000 */
  readonly shutdownTimeoutMs?: number;
  /**
   * Most batches of a stream applied in one transaction when several are pending (1: never
   * coalesce). Each batch still becomes visible all at once; a group that fails on its data falls
   * back to one batch at a time. @default 200
   */
  readonly coalesceMaxBatches?: number;
  /** Most rows in one coalesced transaction. @default 200000 */
  readonly coalesceMaxRows?: number;
  /** Most wire bytes in one coalesced transaction. @default 33554432 (32 MiB) */
  readonly coalesceMaxBytes?: number;
  /**
   * Days the ledger (bulk_ingest.batches) keeps a batch's row; older rows are deleted by the
   * workers, a few at a time, every 10 minutes and when one starts. 0 keeps them forever.
   * @default 30
   */
  readonly ledgerRetentionDays?: number;
  /** Passed to the core for table swaps: as ingest()'s. @default {} (the delays of BlockingBackendsOptions) */
  readonly blockingBackends?: BlockingBackendsOptions | false;
  /** @default a pino logger at level 'info' (the `worker` command reads LOG_LEVEL) */
  readonly logger?: Logger;
  /** Test-only fault injection. @default undefined (none) */
  readonly fault?: ApplyHooks['fault'];
}

/**
 * Each option's check and default. The bounds are those an operator can mean: a concurrency of
 * 1,000 kicks or a sweep every millisecond is a typo, refused at once rather than found in production.
 */
export const workerOptionsSchema = queueNamesSchema.extend({
  databaseUrl: databaseUrlOption,
  redis: redisOption,
  concurrency: integer(1, 256).default(2),
  poisonRetries: integer(0, 100).default(3),
  poisonBackoffMs: integer(0).default(1000),
  lockDurationMs: integer(0).default(30_000),
  stalledIntervalMs: integer(0).default(30_000),
  sweepIntervalMs: integer(10, 3_600_000).default(5000),
  shutdownTimeoutMs: integer(0).default(30_000),
  coalesceMaxBatches: integer(1, 100_000).default(DEFAULT_COALESCE_LIMITS.maxBatches),
  coalesceMaxRows: integer(1, 1_000_000_000).default(DEFAULT_COALESCE_LIMITS.maxRows),
  coalesceMaxBytes: integer(1, 2 ** 40).default(DEFAULT_COALESCE_LIMITS.maxBytes),
  ledgerRetentionDays: integer(0, 36_500).default(30),
  // ingest()'s own: checked (each delay) and defaulted here, at construction, not at a swap.
  blockingBackends: blockingBackendsSchema,
  logger: z
    .custom<Logger>(
      (value) => typeof value === 'object' && value !== null && typeof (value as Logger).info === 'function',
      expecting('to be a pino logger'),
    )
    .default(() => pino({ level: 'info' })),
  fault: callable<NonNullable<ApplyHooks['fault']>>().optional(),
});

export type ResolvedWorkerOptions = z.output<typeof workerOptionsSchema>;
