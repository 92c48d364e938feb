/**
 * Regression tests of the queue's integrity: each found by an adversarial review, each named
 * after what broke. Real Redis and PostgreSQL; one schema, queue and key prefix per suite.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { Queue } from 'bullmq';
import pg from 'pg';
import {
  defineTable,
  ingest,
  type PgBulkIngestError,
  Producer,
  StreamAdmin,
  Upsert,
  type Worker,
} from '../../src/index.ts';
import { bullQueues } from '../../src/queue/queue-config.ts';
import { QueueKeys } from '../../src/queue/queue-keys.ts';
import { addCommitLog, assertCommitOrder, commitOrder } from '../helpers/commit-log.ts';
import { rejection } from '../helpers/ingest.ts';
import { DATABASE_URL, dropSchema, uniqueName, withClient } from '../helpers/pg.ts';
import { cleanQueue, inProcessWorker, REDIS_URL, uniqueQueue } from '../helpers/queue.ts';
import { withReadOnlyRole } from '../helpers/stream-state.ts';
import { keyedTable } from '../helpers/tables.ts';
import { waitUntil } from '../helpers/wait.ts';

async function rowsOf(table: string): Promise<unknown[][]> {
  return withClient(
    async (c) => (await c.query({ text: `SELECT * FROM ${table} ORDER BY 1`, rowMode: 'array' })).rows,
  );
}

describe('queue integrity', () => {
  const schema = uniqueName('queue_integrity');
  const names = uniqueQueue();
  let producer: Producer;
  let worker: Worker;
  let admin: StreamAdmin;
  const keyed = (name: string, s = schema) => keyedTable(s, name, []);
  const committed = async (stream: string, seq: number) =>
    waitUntil(`${stream} at ${seq}`, async () => (await admin.status(stream))[0]?.committedSeq === seq, {
      timeoutMs: 20_000,
    });

  before(async () => {
    producer = new Producer({ redis: REDIS_URL, ...names });
    worker = inProcessWorker(names, { sweepIntervalMs: 200, poisonRetries: 0 });
    admin = new StreamAdmin({ databaseUrl: DATABASE_URL, redis: REDIS_URL, ...names });
    await worker.start();
  });
  after(async () => {
    await producer.close();
    await worker.close();
    await admin.close();
    await cleanQueue(names);
    await dropSchema(schema);
    await dropSchema(`${schema}.x`);
  });

  it('regression: two streams using the same batchId each commit their own rows (parts were shared)', async () => {
    const [a, b] = [keyed('same_id_a'), keyed('same_id_b')];
    const rows = (t: typeof a, n: number) =>
      Array.from({ length: 300 }, (_, i) => [t, [i, `${t.name}-${n}-${i}`]] as const);
    await producer.enqueue({ tables: [a], highWatermark: 1, rows: rows(a, 1), batchId: '2024-05-01' });
    await producer.enqueue({ tables: [b], highWatermark: 1, rows: rows(b, 1), batchId: '2024-05-01' });
    await committed(`${schema}.same_id_a`, 1);
    await committed(`${schema}.same_id_b`, 1);
    const inA = await rowsOf(`"${schema}".same_id_a`);
    const inB = await rowsOf(`"${schema}".same_id_b`);
    assert.equal(inA.length, 300);
    assert.ok(inA.every((r) => String(r[1]).startsWith('same_id_a-')));
    assert.ok(inB.every((r) => String(r[1]).startsWith('same_id_b-')));
  });

  it('regression: a stream named "S:batch:2" neither overwrites stream S\'s batch 2 nor breaks status', async () => {
    const t = keyed('colliding');
    const s = `${schema}.colliding`;
    await producer.enqueue({ tables: [t], highWatermark: 1, rows: [[t, [1, 'one']]], stream: s });
    await producer.enqueue({ tables: [t], highWatermark: 2, rows: [[t, [2, 'two']]], stream: s });
    await producer.enqueue({
      tables: [t],
      highWatermark: 3,
      rows: [[t, [3, 'three']]],
      stream: `${s}:batch:2`,
    });
    await committed(s, 2);
    await committed(`${s}:batch:2`, 1);
    assert.deepEqual(await rowsOf(`"${schema}".colliding`), [
      [1, 'one'],
      [2, 'two'],
      [3, 'three'],
    ]);
    const all = await admin.status();
    assert.ok(all.some((x) => x.stream === `${s}:batch:2` && x.error === null));
  });

  it('a stream named with braces, percent signs, colons and a newline is committed under its own keys', async () => {
    const t = keyed('odd_names');
    const stream = `${schema}.{odd}%3A:\nname}`;
    await producer.enqueue({
      tables: [t],
      highWatermark: 1,
      rows: [[t, [1, 'odd']]],
      stream,
      batchId: '{b}%:1',
    });
    await committed(stream, 1);
    assert.deepEqual(await rowsOf(`"${schema}".odd_names`), [[1, 'odd']]);
    assert.equal((await admin.status(stream))[0]?.error, null);
  });

  it('regression: a stream name or batchId PostgreSQL cannot store (NUL, lone surrogate) is refused at enqueue (was acknowledged, then broke status for every stream)', async () => {
    const t = keyed('bad_names');
    for (const [stream, batchId, what] of [
      [`${schema}.a\u0000b`, 'b-1', /stream name .* holds a NUL character/],
      [`${schema}.a\ud800b`, 'b-2', /stream name .* holds a lone UTF-16 surrogate/],
      [`${schema}.fine`, 'x\u0000y', /batchId .* holds a NUL character/],
      [`${schema}.fine`, '', /batchId "" is empty/],
      [`${schema}.${'s'.repeat(600)}`, 'b-3', /stream name .* is longer than 512 characters/],
    ] as const) {
      const error = (await rejection(() =>
        producer.enqueue({ tables: [t], highWatermark: 1, rows: [[t, [1, 'x']]], stream, batchId }),
      )) as PgBulkIngestError;
      assert.equal(error.code, 'INVALID_BATCH_JOB');
      assert.match(error.message, what);
    }
    assert.ok(
      (await admin.status()).every((s) => s.error === null),
      'status still works for every stream',
    );
  });

  it('regression: tables "S.x"."t" and "S"."x.t" get their own rows and their own default streams', async () => {
    const dotted = keyed('t', `${schema}.x`);
    const plain = keyed('x.t');
    const a = await producer.enqueue({
      tables: [dotted],
      highWatermark: 'a',
      rows: [[dotted, [1, 'dotted schema']]],
    });
    const b = await producer.enqueue({
      tables: [plain],
      highWatermark: 'b',
      rows: [[plain, [1, 'dotted name']]],
    });
    assert.notEqual(a.stream, b.stream);
    await committed(a.stream, 1);
    await committed(b.stream, 1);
    assert.deepEqual(await rowsOf(`"${schema}.x".t`), [[1, 'dotted schema']]);
    assert.deepEqual(await rowsOf(`"${schema}"."x.t"`), [[1, 'dotted name']]);
  });

  it('regression: a batchId re-sent with other content is refused (BATCH_ID_CONFLICT), not acknowledged as a duplicate', async () => {
    const t = keyed('idempotency');
    const first = await producer.enqueue({
      tables: [t],
      highWatermark: 1,
      rows: [[t, [1, 'a']]],
      batchId: 'b-1',
    });
    const same = await producer.enqueue({
      tables: [t],
      highWatermark: 1,
      rows: [[t, [1, 'a']]],
      batchId: 'b-1',
    });
    assert.deepEqual([same.seq, same.duplicate], [first.seq, true]);
    const error = (await rejection(() =>
      producer.enqueue({ tables: [t], highWatermark: 1, rows: [[t, [1, 'changed']]], batchId: 'b-1' }),
    )) as PgBulkIngestError;
    assert.equal(error.code, 'BATCH_ID_CONFLICT');
    assert.match(error.message, /batchId "b-1" was enqueued before \(as batch 1\) with other content/);
    await committed(first.stream, 1);
    assert.deepEqual(await rowsOf(`"${schema}".idempotency`), [[1, 'a']]);
  });

  it('remembers a batchId for the idempotency window only (24 hours by default)', async () => {
    const t = keyed('window');
    const { stream } = await producer.enqueue({ tables: [t], highWatermark: 1, rows: [], batchId: 'w-1' });
    const { Redis } = await import('ioredis');
    const own = new Redis(REDIS_URL);
    try {
      const seconds = await own.ttl(new QueueKeys(names.prefix).stream(stream).batchId('w-1'));
      assert.ok(seconds > 0 && seconds <= 24 * 3600, `TTL ${seconds} s`);
    } finally {
      own.disconnect();
    }
  });

  it('regression: a batch whose header vanished from Redis parks its stream with the reason (was retried forever)', async () => {
    const t = keyed('vanished');
    const { stream } = await producer.enqueue({ tables: [t], highWatermark: 1, rows: [[t, [1, 'a']]] });
    await committed(stream, 1);
    const { Redis } = await import('ioredis');
    const own = new Redis(REDIS_URL);
    try {
      // Appended by hand as the script would, minus its header: what a restore from an older
      // backup of Redis leaves behind.
      const keys = new QueueKeys(names.prefix).stream(stream);
      await own.hincrby(keys.state, 'enqueuedSeq', 1);
      await own.hincrby(keys.state, 'pendingBatches', 1);
      await waitUntil(
        'the stream to be blocked',
        async () => (await admin.status(stream))[0]?.blocked !== null,
        { timeoutMs: 10_000 },
      );
      const [status] = await admin.status(stream);
      assert.match(status?.blocked?.reason ?? '', /batch 2 is missing from Redis/);
      assert.equal(status?.committedSeq, 1);
    } finally {
      own.disconnect();
    }
  });

  it('regression: one stream with unreadable state does not break status, the sweep or the others', async () => {
    const t = keyed('broken_neighbour');
    const { stream } = await producer.enqueue({ tables: [t], highWatermark: 1, rows: [[t, [1, 'a']]] });
    await committed(stream, 1);
    const { Redis } = await import('ioredis');
    const own = new Redis(REDIS_URL);
    try {
      await own.hset(new QueueKeys(names.prefix).stream(stream).state, 'lastHighWatermark', '{not json');
      const healthy = keyed('healthy_neighbour');
      const next = await producer.enqueue({
        tables: [healthy],
        highWatermark: 1,
        rows: [[healthy, [1, 'b']]],
      });
      await committed(next.stream, 1);
      const all = await admin.status();
      const broken = all.find((s) => s.stream === stream);
      assert.match(broken?.error ?? '', /cannot be read/);
      assert.equal(all.find((s) => s.stream === next.stream)?.error, null);
      await worker.sweep(); // must not throw
      const sweep = worker.sweep();
      assert.equal(worker.sweep(), sweep, 'a sweep never runs twice at once: a call meanwhile joins it');
      await sweep;
      assert.ok((await worker.streams()).some((s) => s.stream === next.stream));
    } finally {
      own.disconnect();
    }
  });

  it('regression: a failed kick does not fail an enqueue that happened; the sweep applies the batch once', async () => {
    const t = keyed('lost_kick');
    const { Redis } = await import('ioredis');
    const own = new Redis(REDIS_URL);
    const queues = bullQueues(names);
    const idKey = `${queues.prefix}:${queues.kicks}:id`;
    const previous = await own.get(idKey);
    const warnings: string[] = [];
    const onWarning = (w: Error) => warnings.push(w.message);
    process.on('warning', onWarning);
    try {
      // BullMQ's job id counter of the wrong type: every queue.add fails (as under Redis OOM).
      await own.del(idKey);
      await own.hset(idKey, 'broken', '1');
      const result = await producer.enqueue({ tables: [t], highWatermark: 1, rows: [[t, [1, 'a']]] });
      assert.equal(result.seq, 1);
      await new Promise((r) => setTimeout(r, 50));
      assert.ok(
        warnings.some((w) => /the batch is enqueued, but waking a worker failed/.test(w)),
        warnings.join(),
      );
      await own.del(idKey);
      if (previous !== null) await own.set(idKey, previous);
      await committed(result.stream, 1);
      assert.deepEqual(await rowsOf(`"${schema}".lost_kick`), [[1, 'a']]);
    } finally {
      process.off('warning', onWarning);
      own.disconnect();
    }
  });

  it('regression: two writers creating tables in the same new schema at once both commit (was 23505 on pg_namespace)', async () => {
    const fresh = uniqueName('new_schema');
    const clients = [
      new pg.Client({ connectionString: DATABASE_URL }),
      new pg.Client({ connectionString: DATABASE_URL }),
    ];
    try {
      await Promise.all(clients.map((c) => c.connect()));
      await Promise.all(
        clients.map((c, i) => {
          const t = keyed(`t${i}`, fresh);
          return ingest(c, [t], () => [[1, null, [[t, [i, 'x']]]]], { upsert: Upsert.IF_PRIMARY_KEY });
        }),
      );
      assert.deepEqual(await rowsOf(`"${fresh}".t1`), [[1, 'x']]);
    } finally {
      await Promise.all(clients.map((c) => c.end()));
      await dropSchema(fresh);
    }
  });

  it('forget removes every key of a finished stream; the name then starts a new stream', async () => {
    const t = keyed('forgotten');
    const { stream } = await producer.enqueue({ tables: [t], highWatermark: 1, rows: [[t, [1, 'a']]] });
    await committed(stream, 1);
    await waitUntil(
      'Redis to learn of the commit',
      async () => (await admin.status(stream))[0]?.pending === 0,
      { timeoutMs: 5000 },
    );
    await admin.forget(stream);
    const { Redis } = await import('ioredis');
    const own = new Redis(REDIS_URL);
    try {
      assert.deepEqual(await own.keys(new QueueKeys(names.prefix).streamPattern(stream)), []);
      assert.equal((await own.sismember(new QueueKeys(names.prefix).streams, stream)) === 1, false);
    } finally {
      own.disconnect();
    }
    const again = await producer.enqueue({ tables: [t], highWatermark: 2, rows: [[t, [2, 'b']]] });
    assert.equal(again.seq, 1, 'a forgotten stream starts again at 1');
    await committed(stream, 1);
    assert.deepEqual(await rowsOf(`"${schema}".forgotten`), [
      [1, 'a'],
      [2, 'b'],
    ]);
  });

  it('regression: status works for a role that may only read (it ran CREATE ... IF NOT EXISTS)', async () => {
    await withReadOnlyRole(async (databaseUrl) => {
      const reader = new StreamAdmin({ databaseUrl, redis: REDIS_URL, ...names });
      try {
        const statuses = await reader.status();
        assert.ok(statuses.length > 0);
        assert.ok(statuses.some((s) => s.committedSeq > 0));
      } finally {
        await reader.close();
      }
    });
  });
});

describe('queue integrity: batch jobs from other languages', () => {
  const schema = uniqueName('foreign_order');
  const names = uniqueQueue();
  after(async () => {
    await cleanQueue(names);
    await dropSchema(schema);
  });

  it('regression: jobs added through BullMQ commit in the order they were added, with 3 workers of concurrency 3', {
    timeout: 60_000,
  }, async () => {
    const workers = Array.from({ length: 3 }, () => inProcessWorker(names, { concurrency: 3 }));
    const queues = bullQueues(names);
    // What docs/batch-format.md tells a Python (or any BullMQ) producer to do.
    const queue = new Queue(queues.admissions, { connection: { url: REDIS_URL }, prefix: queues.prefix });
    const admin = new StreamAdmin({ databaseUrl: DATABASE_URL, redis: REDIS_URL, ...names });
    try {
      const t = defineTable({
        schema,
        name: 'ordered',
        columns: [
          { name: 'id', type: 'integer', primaryKey: true },
          { name: 'n', type: 'integer' },
        ],
      });
      await withClient(async (c) => {
        await ingest(c, [t], () => []);
        await addCommitLog(c, schema, 'ordered', 'n');
      });
      await Promise.all(workers.map((w) => w.start()));
      const BATCHES = 60;
      for (let n = 1; n <= BATCHES; n++) {
        await queue.add('batch', {
          version: 1,
          tables: [
            {
              schema,
              name: 'ordered',
              columns: [
                { name: 'id', type: 'integer', primaryKey: true },
                { name: 'n', type: 'integer' },
              ],
            },
          ],
          highWatermark: n,
          rows: [
            [`${schema}.ordered`, [1, n]],
            [`${schema}.ordered`, [n + 1, n]],
          ],
        });
      }
      const stream = `${schema}.ordered`;
      await waitUntil('every batch', async () => (await admin.status(stream))[0]?.committedSeq === BATCHES, {
        timeoutMs: 40_000,
      });
      // Each batch overwrote row 1 with its n: the last one added must be the last one applied,
      // and seq k must be the k-th job added (high watermark k).
      assert.deepEqual(await rowsOf(`"${schema}".ordered WHERE id = 1`), [[1, BATCHES]]);
      const [status] = await admin.status(stream);
      assert.equal(status?.highWatermark, BATCHES);
      // Batch n (marker n) must be the n-th added, and transactions must commit in that order.
      const order = await withClient((c) => commitOrder(c, schema, 'ordered'));
      const seqOfMarker = new Map(Array.from({ length: BATCHES }, (_, i) => [i + 1, i + 1]));
      assertCommitOrder(order, seqOfMarker, BATCHES);
    } finally {
      await queue.close();
      await admin.close();
      await Promise.all(workers.map((w) => w.close()));
    }
  });
});
