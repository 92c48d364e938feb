/**
 * Names both sides of the queue must agree on, where the services are (the options every
 * component shares, with their schema), and the kick that wakes workers up.
 */
import { createHash } from 'node:crypto';
import type { Queue } from 'bullmq';
import type { RedisOptions } from 'ioredis';
import { z } from 'zod';
import { expecting, parseOptions } from '../ingest/parse-options.ts';
import { bullmqPrefix, prefixProblem } from './queue-keys.ts';

export const DEFAULT_REDIS_URL = 'redis://127.0.0.1:6379';
export const DEFAULT_DATABASE_URL = 'postgres://postgres@127.0.0.1:5432/postgres';

export interface QueueNames {
  /**
   * The BullMQ queue that producers in other languages add `batch` jobs to (admitted one at a
   * time, in the order they were added); kicks use `<queueName>.kicks`. @default 'pg-bulk-ingest'
   */
  readonly queueName?: string;
  /**
   * Prefix of this deployment's Redis keys: its own (`<prefix>:...`) and BullMQ's (`{<prefix>}:...`).
   * No braces. @default 'pgbi'
   */
  readonly prefix?: string;
}

export const DEFAULT_QUEUE_NAME = 'pg-bulk-ingest';
export const DEFAULT_PREFIX = 'pgbi';

const nonEmpty = expecting('to be a non-empty string');

/** The schema of QueueNames: each component's options schema extends it. */
export const queueNamesSchema = z.object({
  queueName: z.string(nonEmpty).min(1, nonEmpty).default(DEFAULT_QUEUE_NAME),
  prefix: z
    .string(nonEmpty)
    .superRefine((prefix, ctx) => {
      const problem = prefixProblem(prefix);
      if (problem !== undefined) ctx.addIssue({ code: 'custom', message: problem });
    })
    .default(DEFAULT_PREFIX),
});

/** The `redis` option: a URL, or ioredis options. */
export const redisOption = z
  .union(
    [
      z.string().min(1),
      z.custom<RedisOptions>((value) => typeof value === 'object' && value !== null && !Array.isArray(value)),
    ],
    expecting('to be a Redis URL or ioredis options'),
  )
  .default(DEFAULT_REDIS_URL);

/** The `databaseUrl` option: a node-postgres connection string. */
const connectionString = expecting('to be a PostgreSQL connection string');
export const databaseUrlOption = z
  .string(connectionString)
  .min(1, connectionString)
  .default(DEFAULT_DATABASE_URL);

/** Where PostgreSQL and Redis are, and the deployment's names: the options of StreamAdmin. */
export const connectionOptionsSchema = queueNamesSchema.extend({
  databaseUrl: databaseUrlOption,
  redis: redisOption,
});

/** Job names. */
export const KICK_JOB = 'kick';
/** A whole batch as JSON, added directly by a producer in another language. */
export const BATCH_JOB = 'batch';

export interface KickData {
  readonly stream: string;
}

/** The two BullMQ queues of a deployment and the options to open them with. */
export function bullQueues(names: QueueNames) {
  const { queueName, prefix } = parseOptions(queueNamesSchema, names);
  return {
    /** Foreign `batch` jobs: admitted strictly in order (global concurrency 1). */
    admissions: queueName,
    /** Kicks: "apply whatever is pending on this stream". */
    kicks: `${queueName}.kicks`,
    prefix: bullmqPrefix(prefix),
  };
}

/**
 * A kick fails only on a transient error (a poison batch parks its stream and the kick ends):
 * it is retried every second for as long as it takes, with `status` showing the stream as
 * RETRYING and why. Not exponentially: while a kick waits for its retry, new kicks of the stream
 * are de-duplicated into it, so a long backoff would hold the stream up after a short outage.
 * Completed kicks are only a trace; failed ones are kept longer for inspection.
 */
const KICK_JOB_OPTIONS = {
  attempts: 1_000_000,
  backoff: { type: 'fixed', delay: 1000 },
  removeOnComplete: { count: 1000 },
  removeOnFail: { count: 10000 },
} as const;

/**
 * Wakes a worker for `stream`. One kick per stream at a time (BullMQ de-duplication): while one
 * waits, more are no-ops; while one is active, one more is kept and re-created when it ends, so
 * batches enqueued during a drain are never missed. The id is a hash: streams are free text.
 */
export async function kickStream(queue: Queue<KickData>, stream: string): Promise<void> {
  const id = `kick-${createHash('sha256').update(stream).digest('base64url')}`;
  await queue.add(
    KICK_JOB,
    { stream },
    { ...KICK_JOB_OPTIONS, deduplication: { id, keepLastIfActive: true } },
  );
}
