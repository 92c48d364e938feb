/**
 * How the per-stream work scales with the number of streams (50,000 streams once made one
 * sweep take 5.4 s, /metrics 12.5 MiB and `status` 7.2 s). Creates N streams of one committed
 * batch each under a throw-away prefix on the local Redis and PostgreSQL, then times a sweep,
 * `status` and a /metrics scrape, and prints the /metrics size. `npm run bench:streams [N]`.
 */
import { pino } from 'pino';
import { StreamAdmin, Worker } from '../src/index.ts';
import { createMetrics } from '../src/ops/metrics.ts';
import { attachWorkerMetrics } from '../src/ops/worker-metrics.ts';
import { QueueKeys } from '../src/queue/queue-keys.ts';
import { connectRedis, deleteKeysMatching } from '../src/queue/stream-store.ts';

const N = Number(process.argv[2] ?? 50_000);
const redisUrl = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';
const databaseUrl = process.env.DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres';
const prefix = `bench-streams-${process.pid}`;
const names = { queueName: prefix, prefix };
const keys = new QueueKeys(prefix);
const redis = connectRedis(redisUrl);

async function time<T>(label: string, fn: () => Promise<T>): Promise<T> {
  const start = performance.now();
  const result = await fn();
  console.log(`${label}: ${(performance.now() - start).toFixed(0)} ms`);
  return result;
}

try {
  await time(`create ${N} streams`, async () => {
    for (let i = 0; i < N; i += 1000) {
      const pipeline = redis.pipeline();
      for (let j = i; j < Math.min(N, i + 1000); j++) {
        const stream = `bench.stream_${j}`;
        pipeline.sadd(keys.streams, stream);
        pipeline.hset(keys.stream(stream).state, {
          epoch: 'e',
          epochs: '[["e",0]]',
          enqueuedSeq: 1,
          committedSeq: 1,
          pendingBatches: j % 100 === 0 ? 1 : 0,
          pendingBytes: 0,
          committedAt: Date.now(),
          committedHighWatermark: '1',
          lastHighWatermark: '1',
        });
      }
      await pipeline.exec();
    }
  });
  const worker = new Worker({ databaseUrl, redis: redisUrl, ...names, logger: pino({ level: 'silent' }) });
  const admin = new StreamAdmin({ databaseUrl, redis: redisUrl, ...names });
  const metrics = createMetrics({ stateTimeoutMs: 60_000 });
  const detach = attachWorkerMetrics(metrics, worker);
  await time('sweep (kicks the 1% with pending batches)', () => worker.sweep());
  await time('sweep again (kicks de-duplicated)', () => worker.sweep());
  const statuses = await time('status (all streams)', () => admin.status());
  console.log(`status rows: ${statuses.length}`);
  const text = await time('/metrics scrape', () => metrics.registry.metrics());
  console.log(`/metrics size: ${(text.length / 1024).toFixed(0)} KiB`);
  await detach();
  await admin.close();
  await worker.close();
} finally {
  for (const pattern of [`${prefix}:*`, `{${prefix}}:*`]) await deleteKeysMatching(redis, pattern);
  redis.disconnect();
}
