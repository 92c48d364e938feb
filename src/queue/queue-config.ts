/** Names both sides of the queue must agree on, and the kick job that wakes workers up. */
import { createHash } from 'node:crypto';

export const DEFAULT_REDIS_URL = 'redis://127.0.0.1:6379';
export const DEFAULT_DATABASE_URL = 'postgres://postgres@127.0.0.1:5432/postgres';

export interface QueueNames {
  /** The BullMQ queue carrying kick jobs (and batch jobs from foreign producers). @default 'pg-bulk-ingest' */
  readonly queueName?: string;
  /** Prefix of this package's own Redis keys (streams, batches, parts). @default 'pgbi' */
  readonly prefix?: string;
}

export const DEFAULT_QUEUE_NAME = 'pg-bulk-ingest';
export const DEFAULT_PREFIX = 'pgbi';

/** Job names on the queue. */
export const KICK_JOB = 'kick';
/** A whole batch as JSON, added directly by a producer in another language. */
export const BATCH_JOB = 'batch';

export interface KickData {
  readonly stream: string;
}

/** BullMQ job ids may not contain ':' and stream names may: hash the stream. */
export function kickJobId(stream: string, discriminator: string | number): string {
  return `kick-${createHash('sha1').update(stream).digest('hex').slice(0, 20)}-${discriminator}`;
}

/** Completed kicks are only a trace; failed ones are kept longer for inspection. */
export const KICK_JOB_OPTIONS = {
  attempts: 10,
  backoff: { type: 'exponential', delay: 500 },
  removeOnComplete: { count: 1000 },
  removeOnFail: { count: 10000 },
} as const;
