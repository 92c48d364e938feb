/** Names both sides of the queue must agree on, and the kick that wakes workers up. */
import { createHash } from 'node:crypto';
import type { Queue } from 'bullmq';
import { bullmqPrefix } from './queue-keys.ts';

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

/** Job names. */
export const KICK_JOB = 'kick';
/** A whole batch as JSON, added directly by a producer in another language. */
export const BATCH_JOB = 'batch';

export interface KickData {
  readonly stream: string;
}

/** The two BullMQ queues of a deployment and the options to open them with. */
export function bullQueues(names: QueueNames) {
  const queueName = names.queueName ?? DEFAULT_QUEUE_NAME;
  return {
    /** Foreign `batch` jobs: admitted strictly in order (global concurrency 1). */
    admissions: queueName,
    /** Kicks: "apply whatever is pending on this stream". */
    kicks: `${queueName}.kicks`,
    prefix: bullmqPrefix(names.prefix ?? DEFAULT_PREFIX),
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
