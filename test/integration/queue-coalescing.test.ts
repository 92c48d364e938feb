/**
 * Coalescing: a worker that finds several pending batches of a stream applies consecutive ones
 * sharing tables and options in one transaction, leaving the table exactly as applying them one
 * by one would; a group failing on its data falls back to one batch at a time.
 */
import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { type CommittedBatch, Delete, ingest, Producer, StreamAdmin, Upsert } from '../../src/index.ts';
import { DATABASE_URL, dropSchema, uniqueName, withClient } from '../helpers/pg.ts';
import { cleanQueue, inProcessWorker, REDIS_URL, uniqueQueue, withWorker } from '../helpers/queue.ts';
import { keyedTable } from '../helpers/tables.ts';
import { waitUntil } from '../helpers/wait.ts';

describe('queue coalescing', () => {
  const schema = uniqueName('coalescing');
  const names = uniqueQueue();
  after(async () => {
    await cleanQueue(names);
    await dropSchema(schema);
  });
  const table = (name: string) => keyedTable(schema, name, []);

  /** Enqueues `batches` with no worker running, then lets one worker drain them. */
  async function drainWithOneWorker(
    stream: string,
    enqueue: (producer: Producer) => Promise<void>,
    until: (admin: StreamAdmin) => Promise<boolean>,
  ): Promise<CommittedBatch[]> {
    const producer = new Producer({ redis: REDIS_URL, ...names });
    const admin = new StreamAdmin({ databaseUrl: DATABASE_URL, redis: REDIS_URL, ...names });
    try {
      await enqueue(producer);
      const worker = inProcessWorker(names, { concurrency: 1, poisonRetries: 0 });
      const committed: CommittedBatch[] = [];
      worker.on('committed', (batch) => committed.push(batch));
      await withWorker(worker, () =>
        waitUntil(`stream ${stream}`, () => until(admin), { timeoutMs: 30_000 }),
      );
      return committed;
    } finally {
      await producer.close();
      await admin.close();
    }
  }

  it('applies pending batches in fewer transactions, leaving what applying them in order leaves', async () => {
    const t = table('overlapping');
    const stream = `${schema}.overlapping`;
    const expected = new Map<number, string>();
    const committed = await drainWithOneWorker(
      stream,
      async (producer) => {
        for (let n = 1; n <= 40; n++) {
          // Keys overlap between batches, and repeat within one: the last row of a key wins.
          const rows = [n % 7, (n * 3) % 11, n % 7].map((id, i) => [id, `batch ${n} row ${i}`] as const);
          for (const [id, value] of rows) expected.set(id, value);
          await producer.enqueue({ tables: [t], highWatermark: n, rows: rows.map((r) => [t, [...r]]) });
        }
      },
      async (admin) => (await admin.status(stream))[0]?.committedSeq === 40,
    );
    assert.ok(committed.length < 40, `${committed.length} transactions for 40 batches`);
    assert.deepEqual(
      committed.flatMap((c) => c.headers.map((h) => h.highWatermark)),
      Array.from({ length: 40 }, (_, i) => i + 1),
      'every batch committed once, in order',
    );
    const rows = await withClient(
      async (c) => (await c.query(`SELECT id, value FROM "${schema}".overlapping ORDER BY id`)).rows,
    );
    assert.deepEqual(
      rows,
      [...expected].sort(([a], [b]) => a - b).map(([id, value]) => ({ id, value })),
    );
  });

  it('falls back to one batch at a time when a group fails on its data: the batches before the bad one commit, it is parked', async () => {
    const t = table('poisoned');
    const stream = `${schema}.poisoned`;
    await withClient(async (c) => {
      await ingest(c, [t], () => []);
      await c.query(`ALTER TABLE "${schema}".poisoned ADD CONSTRAINT not_bad CHECK (value <> 'bad')`);
    });
    const committed = await drainWithOneWorker(
      stream,
      async (producer) => {
        for (let n = 1; n <= 10; n++) {
          const value = n === 6 ? 'bad' : `batch ${n}`;
          await producer.enqueue({ tables: [t], highWatermark: n, rows: [[t, [n, value]]] });
        }
      },
      async (admin) => (await admin.status(stream))[0]?.blocked !== null,
    );
    const admin = new StreamAdmin({ databaseUrl: DATABASE_URL, redis: REDIS_URL, ...names });
    try {
      const [status] = await admin.status(stream);
      assert.equal(status?.committedSeq, 5);
      assert.equal(status?.blocked?.seq, 6);
      assert.match(status?.blocked?.reason ?? '', /not_bad/);
      assert.equal(status?.pending, 5);
      assert.equal(status?.highWatermark, 5);
    } finally {
      await admin.close();
    }
    assert.deepEqual(
      committed.flatMap((c) => c.headers.map((h) => h.highWatermark)),
      [1, 2, 3, 4, 5],
    );
  });

  it('never coalesces across Delete.BEFORE_FIRST_BATCH: such a batch only opens a group', async () => {
    const t = table('replaced');
    const stream = `${schema}.replaced`;
    const committed = await drainWithOneWorker(
      stream,
      async (producer) => {
        for (let n = 1; n <= 6; n++) {
          await producer.enqueue({
            tables: [t],
            highWatermark: n,
            rows: [[t, [n, `batch ${n}`]]],
            options: {
              upsert: Upsert.IF_PRIMARY_KEY,
              delete: n === 4 ? Delete.BEFORE_FIRST_BATCH : Delete.OFF,
            },
          });
        }
      },
      async (admin) => (await admin.status(stream))[0]?.committedSeq === 6,
    );
    assert.deepEqual(
      committed.map((c) => c.headers.map((h) => h.highWatermark)),
      [
        [1, 2, 3],
        [4, 5, 6],
      ],
    );
    const ids = await withClient(async (c) =>
      (await c.query(`SELECT id FROM "${schema}".replaced ORDER BY id`)).rows.map((r) => r.id),
    );
    assert.deepEqual(ids, [4, 5, 6]);
  });
});
