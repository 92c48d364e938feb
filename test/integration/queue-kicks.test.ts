/**
 * Kicks: a burst of small batches wakes the workers once per drain, not once per batch, and
 * still nothing waits for the sweep; a kick lost between the append and its sending (a producer
 * killed there) is made up for by the sweep. Real Redis, BullMQ and PostgreSQL.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { Queue } from 'bullmq';
import { Redis } from 'ioredis';
import { pino } from 'pino';
import { Producer, StreamAdmin, Worker } from '../../src/index.ts';
import { QueueKeys } from '../../src/queue/queue-keys.ts';
import { DATABASE_URL, dropSchema, uniqueName, withClient } from '../helpers/pg.ts';
import { cleanQueue, REDIS_URL, uniqueQueue } from '../helpers/queue.ts';
import { keyedTable } from '../helpers/tables.ts';
import { waitUntil } from '../helpers/wait.ts';

/** Counts calls of BullMQ's real `Queue.add` (kicks are the only jobs these tests add). */
function countKicks(): { readonly count: number; reset(): void; restore(): void } {
  const add = Queue.prototype.add;
  let count = 0;
  Queue.prototype.add = function (this: Queue, ...args: Parameters<Queue['add']>) {
    count += 1;
    return add.apply(this, args);
  };
  return {
    get count() {
      return count;
    },
    reset: () => {
      count = 0;
    },
    restore: () => {
      Queue.prototype.add = add;
    },
  };
}

describe('queue kicks', () => {
  const schema = uniqueName('queue_kicks');
  const names = uniqueQueue();
  const table = (name: string) => keyedTable(schema, name, []);
  let producer: Producer;
  let admin: StreamAdmin;
  const workers: Worker[] = [];
  const startWorker = async (sweepIntervalMs: number) => {
    const worker = new Worker({
      databaseUrl: DATABASE_URL,
      redis: REDIS_URL,
      ...names,
      logger: pino({ level: 'silent' }),
      sweepIntervalMs,
    });
    workers.push(worker);
    await worker.start();
    return worker;
  };
  const committed = (stream: string, seq: number) =>
    waitUntil(`${stream} at ${seq}`, async () => (await admin.status(stream))[0]?.committedSeq === seq);

  before(() => {
    producer = new Producer({ redis: REDIS_URL, ...names });
    admin = new StreamAdmin({ databaseUrl: DATABASE_URL, redis: REDIS_URL, ...names });
  });
  after(async () => {
    await producer.close();
    await admin.close();
    for (const worker of workers) await worker.close();
    await cleanQueue(names);
    await dropSchema(schema);
  });

  it('a burst of 400 small batches from 8 producer loops sends a kick per drain, not per batch, and commits without the sweep', async () => {
    const t = table('burst');
    const worker = await startWorker(3_600_000); // no sweep during the test: kicks alone must do
    const kicks = countKicks();
    try {
      const loops = Array.from({ length: 8 }, async (_, loop) => {
        for (let i = loop; i < 400; i += 8)
          await producer.enqueue({ tables: [t], highWatermark: i, rows: [[t, [i % 50, `batch ${i}`]]] });
      });
      await Promise.all(loops);
      await committed(`${schema}.burst`, 400);
    } finally {
      kicks.restore();
      await worker.close();
      workers.splice(workers.indexOf(worker), 1);
    }
    assert.ok(kicks.count >= 1, 'the first batch kicks');
    assert.ok(kicks.count <= 100, `${kicks.count} kicks for 400 batches: at most one per drain expected`);
    const rows = await withClient((c) => c.query(`SELECT count(*)::int AS n FROM "${schema}".burst`));
    assert.equal(rows.rows[0].n, 50);
  });

  it('a batch whose kick was lost after the append (kickPending left set) is applied by the sweep', async () => {
    const t = table('lost');
    const stream = `${schema}.lost`;
    const own = new Redis(REDIS_URL);
    const worker = await startWorker(3_600_000); // the test runs the sweep itself
    const kicks = countKicks();
    try {
      // What a producer killed between APPEND_BATCH and its kick leaves: the flag set, no kick.
      await own.hset(new QueueKeys(names.prefix).stream(stream).state, 'kickPending', '1');
      await producer.enqueue({ tables: [t], highWatermark: 1, rows: [[t, [1, 'a']]] });
      assert.equal(kicks.count, 0, 'a pending kick is not sent again');
      await new Promise((r) => setTimeout(r, 300));
      assert.equal((await admin.status(stream))[0]?.committedSeq, 0, 'nothing woke a worker');
      await worker.sweep();
      await committed(stream, 1);
      // The drain cleared the flag: the next batch kicks again.
      kicks.reset();
      await producer.enqueue({ tables: [t], highWatermark: 2, rows: [[t, [2, 'b']]] });
      assert.equal(kicks.count, 1);
      await committed(stream, 2);
    } finally {
      kicks.restore();
      own.disconnect();
    }
  });
});
