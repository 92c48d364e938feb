import { Queue } from 'bullmq';
import { Redis } from 'ioredis';
import { uniqueName } from './pg.ts';

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
    const queue = new Queue(names.queueName, { connection: redis });
    await queue.obliterate({ force: true }).catch(() => undefined);
    await queue.close();
    let cursor = '0';
    do {
      const [next, keys] = await redis.scan(cursor, 'MATCH', `${names.prefix}:*`, 'COUNT', 1000);
      cursor = next;
      if (keys.length > 0) await redis.del(...keys);
    } while (cursor !== '0');
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
