import { after, before } from 'node:test';
import { Redis } from 'ioredis';
import { pino } from 'pino';
import { Producer, Worker } from '../../src/index.ts';
import { DATABASE_URL, uniqueName } from './pg.ts';

export const REDIS_URL = process.env.TEST_REDIS_URL ?? 'redis://127.0.0.1:6379';

/** A queue name and key prefix no other test uses. */
export function uniqueQueue(): { queueName: string; prefix: string } {
  const name = uniqueName('q');
  return { queueName: name, prefix: `pgbi-${name}` };
}

/** Removes the test's BullMQ queue and every key under its prefix. */
export async function cleanQueue(
  names: { queueName: string; prefix: string },
  redisUrl = REDIS_URL,
): Promise<void> {
  const redis = new Redis(redisUrl, { maxRetriesPerRequest: null });
  try {
    // BullMQ's keys are under `{prefix}:`, the queue's own under `prefix:` (src/queue/queue-keys.ts).
    for (const pattern of [`${names.prefix}:*`, `{${names.prefix}}:*`]) {
      let cursor = '0';
      do {
        const [next, keys] = await redis.scan(cursor, 'MATCH', pattern, 'COUNT', 1000);
        cursor = next;
        if (keys.length > 0) await redis.del(...keys);
      } while (cursor !== '0');
    }
  } finally {
    redis.disconnect();
  }
}

/** Polls `check` until it returns true or the timeout passes. */
export async function waitFor(
  check: () => Promise<boolean>,
  timeoutMs = 20_000,
  what = 'condition',
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (await check()) return;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`Timed out after ${timeoutMs} ms waiting for ${what}`);
}

export interface InProcessQueue {
  readonly names: { queueName: string; prefix: string };
  readonly producer: Producer;
  readonly worker: Worker;
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
    worker = new Worker({
      databaseUrl: DATABASE_URL,
      redis: REDIS_URL,
      ...names,
      logger: pino({ level: 'silent' }),
    });
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
  };
}
