/**
 * Bad input from a foreign producer: BullMQ jobs named 'batch' added by hand, as a producer in
 * another language would. Each malformed one ends in the failed set with a reason naming the
 * problem, writes nothing, and the worker carries on; a valid one is applied (once).
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { Job, Queue } from 'bullmq';
import { BATCH_JOB, Producer } from '../../src/index.ts';
import { type Connection, inProcessWorker, openQueue } from '../helpers/queue.ts';
import { withQueueFixture } from '../helpers/queue-fixture.ts';
import { committedSeqs } from '../helpers/stream-state.ts';
import { waitUntil } from '../helpers/wait.ts';

function foreignBatch(schema: string, rows: unknown[], extra: Record<string, unknown> = {}) {
  return {
    version: 1,
    tables: [
      {
        schema,
        name: 't',
        columns: [
          { name: 'id', type: 'integer', primaryKey: true },
          { name: 'name', type: 'text' },
        ],
      },
    ],
    highWatermark: 'hw',
    rows,
    ...extra,
  };
}

async function settled(queue: Queue, job: Job, timeoutMs = 15_000): Promise<Job> {
  await waitUntil(
    `job ${job.id} to settle`,
    async () => ['failed', 'completed'].includes(await job.getState()),
    { timeoutMs: timeoutMs, explain: async () => job.getState() },
  );
  return (await queue.getJob(job.id as string)) as Job;
}

/** A Worker in this process on the fixture's queue, with short intervals: a stalled job comes back in seconds. */
function fastWorker(c: Connection) {
  return inProcessWorker(c, {
    databaseUrl: c.databaseUrl,
    redis: c.redisUrl,
    poisonRetries: 1,
    poisonBackoffMs: 50,
    lockDurationMs: 2000,
    stalledIntervalMs: 2000,
    sweepIntervalMs: 500,
    shutdownTimeoutMs: 2000,
  });
}

describe('queue: bad input from a foreign producer', () => {
  it('fails each malformed batch job with a clear reason, writes nothing, and keeps working', {
    timeout: 60_000,
  }, async () => {
    await withQueueFixture('queue_bad_input', async ({ schema, connection, db }) => {
      const { queue, redis, close } = openQueue(connection);
      const worker = fastWorker(connection);
      const parked: (string | null)[] = [];
      worker.on('parked', (e) => parked.push(e.reason));
      const producer = new Producer({ redis: connection.redisUrl, ...connection });
      try {
        await worker.start();
        const bad: [what: string, data: unknown, reason: RegExp][] = [
          ['data that is not JSON', 'version=1; rows=[1,2', /not valid JSON/],
          ['an unknown version', foreignBatch(schema, [], { version: 99 }), /version/],
          ['a missing field', { ...foreignBatch(schema, []), highWatermark: undefined }, /highWatermark/],
          [
            'a row naming a table not in the job',
            foreignBatch(schema, [[`${schema}.nope`, [1, 'a']]]),
            /row 1.*names table ".*\.nope", which is not one of the batch's tables/,
          ],
          [
            'a value its column cannot hold',
            foreignBatch(schema, [[`${schema}.t`, ['one', 'a']]]),
            /row 1.*column "id".*integer/,
          ],
          [
            'a table definition that is not one',
            foreignBatch(schema, [], { tables: [{ schema, name: 't', columns: [] }] }),
            /tables/,
          ],
        ];
        for (const [what, data, reason] of bad) {
          const job = await settled(queue, await queue.add(BATCH_JOB, data));
          assert.equal(await job.getState(), 'failed', `${what}: should fail`);
          assert.match(job.failedReason, reason, `${what}: reason "${job.failedReason}"`);
          assert.equal(job.attemptsMade, 1, `${what}: retrying a malformed job cannot help`);
        }
        assert.equal(parked.length, bad.length, 'each malformed job is reported as parked');
        // Nothing written: no table, no stream, no batch, no part.
        assert.equal((await db.query('SELECT to_regclass($1) AS t', [`"${schema}".t`])).rows[0]?.t, null);
        assert.deepEqual(await redis.keys(`${connection.prefix}:*`), []);

        // The worker is still working: a valid foreign batch, sent twice with its batchId, applies once,
        // and then a batch from a Producer follows it on the same stream.
        const valid = foreignBatch(schema, [[`${schema}.t`, [1, 'from python']]], { batchId: 'py-1' });
        for (const job of [await queue.add(BATCH_JOB, valid), await queue.add(BATCH_JOB, valid)]) {
          assert.equal(await (await settled(queue, job)).getState(), 'completed');
        }
        const { seq } = await producer.enqueueJob(foreignBatch(schema, [[`${schema}.t`, [2, 'from node']]]));
        assert.equal(seq, 2);
        const stream = `${schema}.t`;
        await waitUntil(
          'both valid batches',
          async () => (await committedSeqs(db, [stream])).get(stream) === 2,
          { timeoutMs: 20_000 },
        );
        const rows = await db.query(`SELECT id, name FROM "${schema}".t ORDER BY id`);
        assert.deepEqual(rows.rows, [
          { id: 1, name: 'from python' },
          { id: 2, name: 'from node' },
        ]);
      } finally {
        await worker.close();
        await producer.close();
        await close();
      }
    });
  });

  it('a batch job whose stored data is not JSON at all ends in the failed set (regression: it stayed active forever)', {
    timeout: 30_000,
  }, async () => {
    await withQueueFixture('queue_raw_garbage', async ({ connection }) => {
      const { queue, redis, close } = openQueue(connection);
      const worker = fastWorker(connection);
      try {
        const job = await queue.add(BATCH_JOB, {});
        // What a producer writing the job hash itself, not through a BullMQ client, might leave.
        await redis.hset(
          `{${connection.prefix}}:${connection.queueName}:${job.id}`,
          'data',
          "{'version': 1, 'rows': [}",
        );
        await worker.start();
        // The job's data cannot be parsed by BullMQ's own Job.fromId either: read the hash.
        const key = `{${connection.prefix}}:${connection.queueName}:${job.id}`;
        await waitUntil(
          'the job to fail',
          async () => (await queue.getJobState(job.id as string)) === 'failed',
          { timeoutMs: 5000 },
        );
        assert.match((await redis.hget(key, 'failedReason')) ?? '', /not valid JSON/);
      } finally {
        await worker.close();
        await close();
      }
    });
  });

  it('parks a batch whose rows are gone from Redis, naming the missing part, and writes nothing of it', {
    timeout: 30_000,
  }, async () => {
    await withQueueFixture('queue_missing_part', async ({ schema, connection, db }) => {
      const { redis, close } = openQueue(connection);
      const worker = fastWorker(connection);
      const producer = new Producer({ redis: connection.redisUrl, ...connection, partBytes: 200 });
      const parked: (string | null)[] = [];
      worker.on('parked', (e) => parked.push(e.reason));
      try {
        const rows = Array.from({ length: 200 }, (_, i) => [`${schema}.t`, [i, `row ${i}`]]);
        const job = foreignBatch(schema, rows, { batchId: 'b-1' });
        await producer.enqueueJob(job);
        const partKeys = await redis.keys(`${connection.prefix}:*:part:*`);
        assert.ok(partKeys.length > 10, `${partKeys.length} parts: more than one read of them`);
        const ninth = partKeys.find((key) => key.endsWith(':9')) as string;
        await redis.del(ninth); // in the second read (8 parts a read)
        await worker.start();
        await waitUntil('the batch to be parked', async () => parked.length === 1, { timeoutMs: 15_000 });
        assert.match(parked[0] ?? '', /batch 1: part 9 of its rows is missing from Redis/);
        const table = await db.query('SELECT to_regclass($1) AS t', [`"${schema}".t`]);
        if (table.rows[0]?.t)
          assert.equal((await db.query(`SELECT count(*)::int AS n FROM "${schema}".t`)).rows[0]?.n, 0);
        assert.equal((await committedSeqs(db, [`${schema}.t`])).get(`${schema}.t`) ?? 0, 0);
      } finally {
        await worker.close();
        await producer.close();
        await close();
      }
    });
  });

  it('parks a stream whose committed state belongs to another deployment (Redis prefix), and claims one that has no owner', {
    timeout: 30_000,
  }, async () => {
    await withQueueFixture('queue_stream_owner', async ({ schema, connection, db }) => {
      const worker = fastWorker(connection);
      const producer = new Producer({ redis: connection.redisUrl, ...connection });
      const parked: (string | null)[] = [];
      worker.on('parked', (e) => parked.push(e.reason));
      try {
        await worker.start(); // creates the state tables
        const taken = `${schema}.taken`;
        const legacy = `${schema}.legacy`;
        await db.query(
          `INSERT INTO bulk_ingest.stream_state (stream, committed_seq, redis_prefix) VALUES ($1, 5, 'other-deployment')`,
          [taken],
        );
        await db.query('INSERT INTO bulk_ingest.stream_state (stream, committed_seq) VALUES ($1, 0)', [
          legacy,
        ]);
        // Without the check, seq 5 (the other deployment's) would pass for ours: this batch "applied".
        await producer.enqueueJob(foreignBatch(schema, [[`${schema}.t`, [1, 'a']]], { stream: taken }));
        await waitUntil('the stream to be parked', async () => parked.length === 1, { timeoutMs: 15_000 });
        assert.match(parked[0] ?? '', /belongs to the deployment with Redis key prefix "other-deployment"/);
        assert.equal((await db.query('SELECT to_regclass($1) AS t', [`"${schema}".t`])).rows[0]?.t, null);

        await producer.enqueueJob(foreignBatch(schema, [[`${schema}.t`, [2, 'b']]], { stream: legacy }));
        await waitUntil(
          'the legacy stream to commit',
          async () => (await committedSeqs(db, [legacy])).get(legacy) === 1,
          { timeoutMs: 15_000 },
        );
        const owners = await db.query(
          'SELECT stream, committed_seq::int AS seq, redis_prefix FROM bulk_ingest.stream_state WHERE stream = ANY($1) ORDER BY stream',
          [[taken, legacy]],
        );
        assert.deepEqual(owners.rows, [
          { stream: legacy, seq: 1, redis_prefix: connection.prefix },
          { stream: taken, seq: 5, redis_prefix: 'other-deployment' },
        ]);
      } finally {
        await worker.close();
        await producer.close();
      }
    });
  });

  it('applies a valid foreign batch in a worker process started with PGBI_QUEUE (its jobs come from that queue)', {
    timeout: 60_000,
  }, async () => {
    await withQueueFixture('queue_cli_queue', async ({ schema, connection, fleet, db }) => {
      const worker = fleet.start({ LOG_LEVEL: 'info' });
      await waitUntil('the worker to start', async () => worker.output.includes('worker started'), {
        timeoutMs: 30_000,
        explain: () => worker.output,
      });
      const started = JSON.parse(
        worker.output.split('\n').find((l) => l.includes('worker started')) as string,
      );
      assert.equal(started.queue, connection.queueName);
      const { queue, close } = openQueue(connection);
      try {
        await queue.add(BATCH_JOB, foreignBatch(schema, [[`${schema}.t`, [1, 'a']]]));
        await waitUntil(
          'the foreign batch to be applied',
          async () => (await committedSeqs(db, [`${schema}.t`])).get(`${schema}.t`) === 1,
          { timeoutMs: 15_000 },
        );
      } finally {
        await close();
      }
    });
  });
});
