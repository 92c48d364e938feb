/**
 * A test's queue: its own BullMQ queue name and key prefix on the shared Redis (or the test's
 * own), removed afterwards; its BullMQ queues opened directly; and a Producer with an in-process
 * Worker on it, or with a StreamAdmin and a worker only while the test drains the queue.
 */
import { after, before } from 'node:test';
import { Queue } from 'bullmq';
import { Redis } from 'ioredis';
import { pino } from 'pino';
import { type CommittedBatch, Producer, StreamAdmin, Worker, type WorkerOptions } from '../../src/index.ts';
import { bullQueues } from '../../src/queue/queue-config.ts';
import { deleteKeysMatching } from '../../src/queue/stream-store.ts';
import { DATABASE_URL, dropSchema, uniqueName } from './pg.ts';
import { forgetStreams } from './stream-state.ts';
import { waitUntil } from './wait.ts';

export const REDIS_URL = process.env.TEST_REDIS_URL ?? 'redis://127.0.0.1:6379';

/** A queue name and key prefix no other test uses. */
export function uniqueQueue(): { queueName: string; prefix: string } {
  const name = uniqueName('q');
  return { queueName: name, prefix: `pgbi-${name}` };
}

/** Where a test's queue lives: what a worker process gets as DATABASE_URL, REDIS_URL, PGBI_QUEUE, PGBI_PREFIX. */
export interface Connection {
  readonly databaseUrl: string;
  readonly redisUrl: string;
  readonly queueName: string;
  readonly prefix: string;
}

/** Removes the test's BullMQ queue and every key under its prefix. */
export async function cleanQueue(
  names: { queueName: string; prefix: string },
  redisUrl = REDIS_URL,
): Promise<void> {
  const redis = new Redis(redisUrl, { maxRetriesPerRequest: null });
  try {
    // BullMQ's keys are under `{prefix}:`, the queue's own under `prefix:` (src/queue/queue-keys.ts).
    for (const pattern of [`${names.prefix}:*`, `{${names.prefix}}:*`])
      await deleteKeysMatching(redis, pattern);
  } finally {
    redis.disconnect();
  }
}

/**
 * A Worker in this process on the test's queue: the test database, REDIS_URL (unless
 * `options.redis`), no log; `options` on top. Started and closed by the caller, or `withWorker`.
 */
export function inProcessWorker(
  names: { queueName: string; prefix: string },
  options: WorkerOptions = {},
): Worker {
  return new Worker({
    databaseUrl: DATABASE_URL,
    redis: REDIS_URL,
    ...names,
    logger: pino({ level: 'silent' }),
    ...options,
  });
}

/** Starts `worker` (just created: it holds connections), runs `fn`, and closes the worker whatever happened. */
export async function withWorker<T>(worker: Worker, fn: () => Promise<T>): Promise<T> {
  try {
    await worker.start();
    return await fn();
  } finally {
    await worker.close();
  }
}

export interface InProcessQueue {
  readonly names: { queueName: string; prefix: string };
  readonly producer: Producer;
  readonly worker: Worker;
  /** Resolves once `stream` has batches and the worker has committed every one enqueued (20 s at most). */
  readonly committedAll: (stream: string) => Promise<unknown>;
}

/**
 * A Producer and a started Worker, in this process, on a queue of their own: created before the
 * suite's tests, closed after them with the queue's keys removed. Call it inside a describe().
 */
export function inProcessQueue(): InProcessQueue {
  const names = uniqueQueue();
  let producer: Producer | undefined;
  let worker: Worker | undefined;
  before(async () => {
    producer = new Producer({ redis: REDIS_URL, ...names });
    worker = inProcessWorker(names);
    await worker.start();
  });
  after(async () => {
    await producer?.close();
    await worker?.close();
    await cleanQueue(names);
  });
  const started = <T>(value: T | undefined): T => {
    if (value === undefined) throw new Error('inProcessQueue: used before its before() hook ran');
    return value;
  };
  return {
    names,
    get producer() {
      return started(producer);
    },
    get worker() {
      return started(worker);
    },
    committedAll: (stream: string) =>
      waitUntil(
        `${stream} committed`,
        async () => {
          const info = await started(producer).streamInfo(stream);
          return info.enqueuedSeq > 0 && info.committedSeq === info.enqueuedSeq;
        },
        { timeoutMs: 20_000 },
      ),
  };
}

export interface AdminQueue {
  /** A schema only this suite uses: its streams are `<schema>.<table>`. */
  readonly schema: string;
  readonly names: { queueName: string; prefix: string };
  /** For the CLI (runCli). */
  readonly connection: Connection;
  readonly producer: Producer;
  readonly admin: StreamAdmin;
  /**
   * Lets one in-process worker (concurrency 1, `options` on top) apply what is pending until
   * `stream` has committed `seq`, then closes it; resolves with the batches it committed.
   */
  readonly drain: (stream: string, seq: number, options?: WorkerOptions) => Promise<CommittedBatch[]>;
}

/**
 * A Producer and a StreamAdmin on a queue and a schema of their own (`uniqueName(tag)`), with no
 * worker but while a test drains the queue. After the suite's tests: both closed, the queue's keys
 * removed, the schema dropped and its streams forgotten in bulk_ingest. Call it inside a describe().
 */
export function queueWithAdmin(tag: string): AdminQueue {
  const schema = uniqueName(tag);
  const names = uniqueQueue();
  const producer = new Producer({ redis: REDIS_URL, ...names });
  const admin = new StreamAdmin({ databaseUrl: DATABASE_URL, redis: REDIS_URL, ...names });
  after(async () => {
    await producer.close();
    await admin.close();
    await cleanQueue(names);
    await dropSchema(schema);
    await forgetStreams(schema);
  });
  const drain = async (stream: string, seq: number, options: WorkerOptions = {}) => {
    const worker = inProcessWorker(names, { concurrency: 1, ...options });
    const committed: CommittedBatch[] = [];
    worker.on('committed', (batch) => committed.push(batch));
    await withWorker(worker, () =>
      waitUntil(`${stream} at ${seq}`, async () => (await admin.status(stream))[0]?.committedSeq === seq, {
        timeoutMs: 30_000,
      }),
    );
    return committed;
  };
  const connection = { databaseUrl: DATABASE_URL, redisUrl: REDIS_URL, ...names };
  return { schema, names, connection, producer, admin, drain };
}

/**
 * The test's BullMQ queues: `queue` takes foreign `batch` jobs, `kicks` the kicks (to add them by
 * hand, or count jobs); close them after.
 */
export function openQueue(c: Connection): {
  queue: Queue;
  kicks: Queue;
  redis: Redis;
  close: () => Promise<void>;
} {
  const redis = new Redis(c.redisUrl, { maxRetriesPerRequest: null });
  const names = bullQueues(c);
  const queue = new Queue(names.admissions, { connection: redis, prefix: names.prefix });
  const kicks = new Queue(names.kicks, { connection: redis, prefix: names.prefix });
  return {
    queue,
    kicks,
    redis,
    close: async () => {
      await queue.close().catch(() => undefined);
      await kicks.close().catch(() => undefined);
      redis.disconnect();
    },
  };
}
