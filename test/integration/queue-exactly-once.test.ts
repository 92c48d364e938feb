/**
 * G2 exactly once in effect: a batch delivered (kicked) many times, a worker killed after COMMIT
 * but before anything else learns of it, and a producer retrying an enqueue: no row is applied
 * twice. The tables have no primary key and take plain inserts (Upsert.OFF), so a second apply
 * of any batch would show as duplicated rows.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Redis } from 'ioredis';
import type pg from 'pg';
import { defineTable, type IngestTable, Producer, Upsert } from '../../src/index.ts';
import { type Connection, openQueue } from '../helpers/queue.ts';
import { withQueueFixture } from '../helpers/queue-fixture.ts';
import { committedSeqs } from '../helpers/stream-state.ts';
import { waitUntil } from '../helpers/wait.ts';

const ROWS_PER_BATCH = 10;

function appendOnlyTable(schema: string): IngestTable {
  return defineTable({
    schema,
    name: 't',
    columns: [
      { name: 'batch', type: 'integer' },
      { name: 'n', type: 'integer' },
    ],
  });
}

function batch(table: IngestTable, id: number, extra: { batchId?: string } = {}) {
  return {
    tables: [table],
    highWatermark: id,
    rows: Array.from({ length: ROWS_PER_BATCH }, (_, n) => [table, [id, n]] as const),
    options: { upsert: Upsert.OFF },
    ...extra,
  };
}

/** Every (batch, n) exactly once: returns the batches present, and fails on any duplicate row. */
async function appliedBatches(db: pg.ClientBase, schema: string): Promise<number[]> {
  const dup = await db.query(
    `SELECT batch, n, count(*)::int AS c FROM "${schema}".t GROUP BY 1, 2 HAVING count(*) > 1`,
  );
  assert.deepEqual(dup.rows, [], 'rows applied more than once');
  const { rows } = await db.query<{ batch: number; c: number }>(
    `SELECT batch, count(*)::int AS c FROM "${schema}".t GROUP BY 1 ORDER BY 1`,
  );
  for (const r of rows) assert.equal(r.c, ROWS_PER_BATCH, `batch ${r.batch} is incomplete`);
  return rows.map((r) => r.batch);
}

async function keysUnder(connection: Connection, pattern: string): Promise<string[]> {
  const redis = new Redis(connection.redisUrl);
  try {
    return (await redis.keys(`${connection.prefix}:${pattern}`)).sort();
  } finally {
    redis.disconnect();
  }
}

async function waitCommitted(db: pg.ClientBase, stream: string, seq: number, timeoutMs = 40_000) {
  await waitUntil(
    `${stream} committed up to ${seq}`,
    async () => (await committedSeqs(db, [stream])).get(stream) === seq,
    { timeoutMs: timeoutMs },
  );
}

describe('queue exactly once (G2)', () => {
  it('applies each batch once when its stream is kicked many times by many worker processes', {
    timeout: 90_000,
  }, async () => {
    await withQueueFixture('queue_once_kicks', async ({ schema, connection, fleet, db }) => {
      const table = appendOnlyTable(schema);
      const stream = `${schema}.t`;
      const producer = new Producer({ redis: connection.redisUrl, ...connection });
      const { kicks: queue, close: closeQueue } = openQueue(connection);
      try {
        for (let i = 1; i <= 20; i++) await producer.enqueue(batch(table, i));
        // Duplicate kicks, as BullMQ may deliver them (a foreign tool, a retry, a stall).
        for (let i = 0; i < 10; i++) await queue.add('kick', { stream });
        for (let w = 0; w < 3; w++) fleet.start({ WORKER_CONCURRENCY: '3' });
        await waitCommitted(db, stream, 20);
        await waitUntil(
          'every kick to be processed',
          async () => {
            const c = await queue.getJobCounts('waiting', 'active', 'delayed', 'completed');
            return c.waiting === 0 && c.active === 0 && c.delayed === 0 && (c.completed ?? 0) >= 10;
          },
          { timeoutMs: 20_000, explain: async () => JSON.stringify(await queue.getJobCounts()) },
        );
        assert.deepEqual(
          await appliedBatches(db, schema),
          Array.from({ length: 20 }, (_, i) => i + 1),
        );
        assert.deepEqual(
          await keysUnder(connection, 'part:*'),
          [],
          'committed batches must be freed from Redis',
        );
      } finally {
        await closeQueue();
        await producer.close();
      }
    });
  });

  it('does not apply a batch again when its worker was killed after COMMIT, before acknowledging', {
    timeout: 90_000,
  }, async () => {
    await withQueueFixture('queue_once_ack', async ({ schema, connection, fleet, db }) => {
      const table = appendOnlyTable(schema);
      const stream = `${schema}.t`;
      const producer = new Producer({ redis: connection.redisUrl, ...connection });
      const { kicks: queue, close: closeQueue } = openQueue(connection);
      try {
        for (let i = 1; i <= 5; i++) await producer.enqueue(batch(table, i));
        const doomed = fleet.start(
          { PGBI_TEST_FAULT: 'after-commit:1', COALESCE_MAX_BATCHES: '1' },
          'dies-after-commit',
        );
        assert.deepEqual(await doomed.exited, { code: null, signal: 'SIGKILL' });
        // The kill hit the window: PostgreSQL has batch 1, Redis and BullMQ were never told.
        assert.equal((await committedSeqs(db, [stream])).get(stream), 1);
        assert.equal((await producer.streamInfo(stream)).committedSeq, 0);
        assert.ok(
          ((await queue.getJobCounts('active')).active ?? 0) >= 1,
          'its kick must still be active (not acknowledged)',
        );
        assert.deepEqual(await appliedBatches(db, schema), [1]);

        fleet.start({}, 'survivor');
        await waitCommitted(db, stream, 5);
        await waitUntil(
          'the Redis mirror to catch up',
          async () => (await producer.streamInfo(stream)).committedSeq === 5,
          { timeoutMs: 10_000 },
        );
        assert.deepEqual(await appliedBatches(db, schema), [1, 2, 3, 4, 5]);
        assert.deepEqual(await keysUnder(connection, 'stream:*:batch:*'), []);
        assert.deepEqual(await keysUnder(connection, 'part:*'), []);
      } finally {
        await closeQueue();
        await producer.close();
      }
    });
  });

  it('enqueues a retried batchId once (same seq, duplicate: true) and applies it once', {
    timeout: 90_000,
  }, async () => {
    await withQueueFixture('queue_once_retry', async ({ schema, connection, fleet, db }) => {
      const table = appendOnlyTable(schema);
      const stream = `${schema}.t`;
      const first = new Producer({ redis: connection.redisUrl, ...connection });
      const second = new Producer({ redis: connection.redisUrl, ...connection });
      try {
        assert.deepEqual(await first.enqueue(batch(table, 1, { batchId: 'b-1' })), {
          stream,
          seq: 1,
          duplicate: false,
        });
        // The producer did not hear back and retries; so does another instance with the same id.
        assert.deepEqual(await first.enqueue(batch(table, 1, { batchId: 'b-1' })), {
          stream,
          seq: 1,
          duplicate: true,
        });
        assert.deepEqual(await second.enqueue(batch(table, 1, { batchId: 'b-1' })), {
          stream,
          seq: 1,
          duplicate: true,
        });
        assert.deepEqual(await second.enqueue(batch(table, 2, { batchId: 'b-2' })), {
          stream,
          seq: 2,
          duplicate: false,
        });
        // Retries racing each other: one of them enqueues, all get the same seq.
        const racing = await Promise.all(
          Array.from({ length: 6 }, (_, i) =>
            (i % 2 ? first : second).enqueue(batch(table, 3, { batchId: 'b-3' })),
          ),
        );
        assert.deepEqual(new Set(racing.map((r) => r.seq)), new Set([3]));
        assert.equal(racing.filter((r) => !r.duplicate).length, 1);
        assert.equal((await first.streamInfo(stream)).enqueuedSeq, 3);

        fleet.start();
        await waitCommitted(db, stream, 3);
        assert.deepEqual(await appliedBatches(db, schema), [1, 2, 3]);

        // A retry arriving after the batch was committed and freed is still recognised.
        assert.deepEqual(await first.enqueue(batch(table, 1, { batchId: 'b-1' })), {
          stream,
          seq: 1,
          duplicate: true,
        });
        await new Promise((r) => setTimeout(r, 1500)); // two sweeps: nothing may be applied again
        assert.equal((await first.streamInfo(stream)).enqueuedSeq, 3);
        assert.equal((await committedSeqs(db, [stream])).get(stream), 3);
        assert.deepEqual(await appliedBatches(db, schema), [1, 2, 3]);
      } finally {
        await first.close();
        await second.close();
      }
    });
  });

  it('leaves no parts in Redis when a retried enqueue arrives after its batch was committed', {
    timeout: 60_000,
  }, async () => {
    await withQueueFixture('queue_once_leak', async ({ schema, connection, fleet, db }) => {
      const table = appendOnlyTable(schema);
      const stream = `${schema}.t`;
      const producer = new Producer({ redis: connection.redisUrl, ...connection });
      try {
        await producer.enqueue(batch(table, 1, { batchId: 'late-retry' }));
        fleet.start();
        await waitCommitted(db, stream, 1);
        await waitUntil(
          'the batch to be freed',
          async () => (await keysUnder(connection, 'part:*')).length === 0,
          { timeoutMs: 10_000 },
        );
        assert.equal((await producer.enqueue(batch(table, 1, { batchId: 'late-retry' }))).duplicate, true);
        // The retry uploaded its parts again; nothing will ever free them if they are made permanent.
        const redis = new Redis(connection.redisUrl);
        try {
          const parts = await keysUnder(connection, 'part:*');
          const permanent = [];
          for (const key of parts) if ((await redis.ttl(key)) === -1) permanent.push(key);
          assert.deepEqual(permanent, [], 'parts of an already committed batch were made permanent (leaked)');
        } finally {
          redis.disconnect();
        }
      } finally {
        await producer.close();
      }
    });
  });
});
