/**
 * Redis losing data, on private redis-servers: restarted empty (no persistence), and restarted
 * from an older snapshot (what `appendfsync everysec` or an RDB restore leaves). Batches
 * acknowledged after the loss must be applied, never taken for batches PostgreSQL committed under
 * the same numbers; the loss is reported in `status`, the log and an event. And Redis out of
 * memory refuses an enqueue before anything is written.
 */
import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { Redis } from 'ioredis';
import { defineTable, type PgBulkIngestError, Producer, StreamAdmin } from '../../src/index.ts';
import { QueueKeys } from '../../src/queue/queue-keys.ts';
import { rejection } from '../helpers/ingest.ts';
import { DATABASE_URL, dropSchema, uniqueName, withClient } from '../helpers/pg.ts';
import { PrivateRedis } from '../helpers/private-redis.ts';
import { inProcessWorker, uniqueQueue, withWorker } from '../helpers/queue.ts';
import { waitUntil } from '../helpers/wait.ts';

describe('Redis losing data', () => {
  const schema = uniqueName('redis_loss');
  after(async () => {
    await dropSchema(schema);
  });
  const table = (name: string) =>
    defineTable({
      schema,
      name,
      columns: [
        { name: 'id', type: 'integer', primaryKey: true },
        { name: 'n', type: 'integer' },
      ],
    });

  /** Producer, worker and admin on `redis`; the worker runs only inside `withWorker`. */
  function queueOn(redis: PrivateRedis) {
    const names = uniqueQueue();
    const gaps: string[] = [];
    const open = () => ({
      producer: new Producer({ redis: redis.url, ...names }),
      admin: new StreamAdmin({ databaseUrl: DATABASE_URL, redis: redis.url, ...names }),
    });
    const whileWorking = (body: () => Promise<unknown>) => {
      const worker = inProcessWorker(names, { redis: redis.url, sweepIntervalMs: 200 });
      worker.on('redisGap', (e) => gaps.push(e.description));
      return withWorker(worker, body);
    };
    return { open, withWorker: whileWorking, gaps };
  }

  async function rows(name: string) {
    return withClient(
      async (c) =>
        (await c.query(`SELECT id, n FROM "${schema}"."${name}" ORDER BY id`)).rows as {
          id: number;
          n: number;
        }[],
    );
  }

  it('regression: after Redis restarts empty, batches acknowledged after the restart are applied (they were deleted as "already committed")', {
    timeout: 60_000,
  }, async () => {
    const redis = new PrivateRedis({ persistence: 'none' });
    await redis.start();
    const t = table('restarted_empty');
    const stream = `${schema}.restarted_empty`;
    const q = queueOn(redis);
    try {
      let { producer, admin } = q.open();
      for (let n = 1; n <= 5; n++)
        await producer.enqueue({ tables: [t], highWatermark: n, rows: [[t, [n, n]]] });
      await q.withWorker(() =>
        waitUntil('five commits', async () => (await admin.status(stream))[0]?.committedSeq === 5, {
          timeoutMs: 20_000,
        }),
      );
      await producer.close();
      await admin.close();
      await redis.crash();
      await redis.start(); // empty: no AOF, no snapshot
      ({ producer, admin } = q.open());
      const after = [];
      for (let n = 6; n <= 8; n++)
        after.push(await producer.enqueue({ tables: [t], highWatermark: n, rows: [[t, [n, n]]] }));
      assert.deepEqual(
        after.map((r) => r.seq),
        [1, 2, 3],
        'a Redis that lost everything numbers from 1 again',
      );
      await q.withWorker(() =>
        waitUntil('the three new batches', async () => (await rows('restarted_empty')).length === 8, {
          timeoutMs: 20_000,
        }),
      );
      assert.deepEqual(
        (await rows('restarted_empty')).map((r) => r.n),
        [1, 2, 3, 4, 5, 6, 7, 8],
      );
      const [status] = await admin.status(stream);
      assert.equal(status?.highWatermark, 8);
      assert.match(status?.redisGap?.description ?? '', /Redis lost data. PostgreSQL had committed batch 5/);
      assert.ok(
        q.gaps.some((g) => /Redis lost data/.test(g)),
        'reported as it was found',
      );
      await producer.close();
      await admin.close();
    } finally {
      await redis.destroy();
    }
  });

  it('regression: after Redis restarts from an older snapshot, new batches are applied and the gap reported', {
    timeout: 60_000,
  }, async () => {
    const redis = new PrivateRedis({ persistence: 'none' });
    await redis.start();
    const t = table('older_snapshot');
    const stream = `${schema}.older_snapshot`;
    const q = queueOn(redis);
    const direct = new Redis(redis.url);
    try {
      let { producer, admin } = q.open();
      for (let n = 1; n <= 3; n++)
        await producer.enqueue({ tables: [t], highWatermark: n, rows: [[t, [n, n]]] });
      await direct.save(); // the snapshot Redis will come back with: 3 enqueued, none committed
      for (let n = 4; n <= 6; n++)
        await producer.enqueue({ tables: [t], highWatermark: n, rows: [[t, [n, n]]] });
      await q.withWorker(() =>
        waitUntil('six commits', async () => (await admin.status(stream))[0]?.committedSeq === 6, {
          timeoutMs: 20_000,
        }),
      );
      await producer.close();
      await admin.close();
      direct.disconnect();
      await redis.crash();
      await redis.start(); // back to the snapshot: batches 1-3 pending again, 4-6 forgotten
      ({ producer, admin } = q.open());
      // Enqueued before any worker looked: Redis numbers them from 4, numbers PostgreSQL used.
      for (let n = 7; n <= 9; n++)
        await producer.enqueue({ tables: [t], highWatermark: n, rows: [[t, [n, n]]] });
      await q.withWorker(() =>
        waitUntil('the new batches', async () => (await rows('older_snapshot')).length === 9, {
          timeoutMs: 20_000,
        }),
      );
      assert.deepEqual(
        (await rows('older_snapshot')).map((r) => r.n),
        [1, 2, 3, 4, 5, 6, 7, 8, 9],
      );
      const [status] = await admin.status(stream);
      assert.equal(status?.highWatermark, 9);
      assert.equal(status?.pending, 0, 'the restored batches 1-3 are known to be committed, not pending');
      assert.match(status?.redisGap?.description ?? '', /Redis lost data/);
      await producer.close();
      await admin.close();
    } finally {
      direct.disconnect();
      await redis.destroy();
    }
  });

  it('regression: a Redis full of pending batches is freed by the workers committing them (their commit report runs under OOM)', {
    timeout: 60_000,
  }, async () => {
    const redis = new PrivateRedis({ persistence: 'none', maxmemory: '3mb' });
    await redis.start();
    const t = table('full_of_batches');
    const names = uniqueQueue();
    const producer = new Producer({ redis: redis.url, ...names, maxPendingBatches: 0, maxPendingBytes: 0 });
    const admin = new StreamAdmin({ databaseUrl: DATABASE_URL, redis: redis.url, ...names });
    try {
      const rows = Array.from({ length: 200 }, (_, i) => [t, [i, i]] as const);
      let enqueued = 0;
      for (let tries = 0; tries < 5000; tries++) {
        const refused = await producer.enqueue({ tables: [t], highWatermark: enqueued + 1, rows }).then(
          () => false,
          (e: Error) => /OOM/.test(e.message),
        );
        if (refused) break;
        enqueued += 1;
      }
      assert.ok(enqueued > 3, `${enqueued} batches before Redis was full`);
      await withWorker(inProcessWorker(names, { redis: redis.url, sweepIntervalMs: 200 }), async () => {
        const stream = `${schema}.full_of_batches`;
        await waitUntil(
          'every batch',
          async () => (await admin.status(stream))[0]?.committedSeq === enqueued,
          { timeoutMs: 30_000 },
        );
        await waitUntil('Redis freed', async () => (await admin.status(stream))[0]?.pending === 0, {
          timeoutMs: 10_000,
        });
        const again = await producer.enqueue({ tables: [t], highWatermark: 'after', rows: [[t, [1, 1]]] });
        assert.equal(again.seq, enqueued + 1, 'room again once the workers committed');
      });
    } finally {
      await producer.close();
      await admin.close();
      await redis.destroy();
    }
  });

  it('regression: Redis out of memory refuses the enqueue before anything is written', {
    timeout: 30_000,
  }, async () => {
    const redis = new PrivateRedis({ persistence: 'none', maxmemory: '3mb' });
    await redis.start();
    const t = table('out_of_memory');
    const names = uniqueQueue();
    const producer = new Producer({ redis: redis.url, ...names });
    const direct = new Redis(redis.url);
    try {
      const ok = await producer.enqueue({ tables: [t], highWatermark: 1, rows: [[t, [1, 1]]] });
      assert.equal(ok.seq, 1);
      // Fill Redis up to its bound, with small values (a large refused value's buffer would free
      // room again).
      const filler = 'x'.repeat(512);
      for (let i = 0; ; i++) {
        const refused = await direct.set(`filler:${i}`, filler).then(
          () => false,
          () => true,
        );
        if (refused) break;
      }
      const before = await direct.hgetall(new QueueKeys(names.prefix).stream(ok.stream).state);
      const error = (await rejection(() =>
        producer.enqueue({ tables: [t], highWatermark: 2, rows: [[t, [2, 2]]] }),
      )) as PgBulkIngestError & { message: string };
      assert.match(error.message, /OOM/);
      assert.deepEqual(
        await direct.hgetall(new QueueKeys(names.prefix).stream(ok.stream).state),
        before,
        'nothing appended',
      );
      await direct.flushall(); // room again: the same enqueue now goes through, once
      const again = await producer.enqueue({ tables: [t], highWatermark: 2, rows: [[t, [2, 2]]] });
      assert.equal(again.duplicate, false);
    } finally {
      await producer.close();
      direct.disconnect();
      await redis.destroy();
    }
  });
});
