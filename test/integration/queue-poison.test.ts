/**
 * G6 poison batches: a batch PostgreSQL refuses is retried with backoff, then parked; its stream
 * stops there (later batches wait), says why in `status` (API and CLI), other streams carry on,
 * and `skip` / `retry` move it on.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import type pg from 'pg';
import { defineTable, type IngestTable, Producer, StreamAdmin, type StreamStatus } from '../../src/index.ts';
import { runCli } from '../helpers/cli.ts';
import type { Connection } from '../helpers/queue.ts';
import { withQueueFixture } from '../helpers/queue-fixture.ts';
import { committedSeqs } from '../helpers/stream-state.ts';
import { waitUntil } from '../helpers/wait.ts';
import type { WorkerFleet } from '../helpers/worker-fleet.ts';

const POISON = { POISON_RETRIES: '2', POISON_BACKOFF_MS: '50' };

function admin(connection: Connection) {
  return new StreamAdmin({ ...connection, redis: connection.redisUrl });
}

async function statusOf(a: StreamAdmin, stream: string): Promise<StreamStatus> {
  return (await a.status(stream))[0] as StreamStatus;
}

async function ids(db: pg.ClientBase, schema: string, table: string): Promise<number[]> {
  return (await db.query(`SELECT id FROM "${schema}"."${table}" ORDER BY id`)).rows.map((r) => r.id);
}

function parkedLogs(fleet: WorkerFleet): string[] {
  return fleet.logLines(/batch parked/);
}

async function enqueueRows(producer: Producer, table: IngestTable, ...rows: unknown[][]) {
  return producer.enqueue({
    tables: [table],
    highWatermark: rows.map((r) => r[0]).join(','),
    rows: rows.map((r) => [table, r] as const),
  });
}

describe('queue poison batches (G6)', () => {
  it('parks a batch with a value PostgreSQL refuses; the stream waits, others go on; skip moves past it', {
    timeout: 90_000,
  }, async () => {
    await withQueueFixture('queue_poison_skip', async ({ schema, connection, fleet, db }) => {
      const codes = defineTable({
        schema,
        name: 'codes',
        columns: [
          { name: 'id', type: 'integer', primaryKey: true },
          { name: 'code', type: 'varchar(3)', unique: true },
        ],
      });
      const other = defineTable({
        schema,
        name: 'other',
        columns: [{ name: 'id', type: 'integer', primaryKey: true }],
      });
      const stream = `${schema}.codes`;
      const otherStream = `${schema}.other`;
      const producer = new Producer({ redis: connection.redisUrl, ...connection });
      const a = admin(connection);
      try {
        await enqueueRows(producer, codes, [1, 'ab']);
        // seq 2: poison, a unique violation (a value PostgreSQL refuses by its type alone is
        // refused at enqueue, never parked: refused-at-the-door.test.ts)
        await enqueueRows(producer, codes, [2, 'ab']);
        await enqueueRows(producer, codes, [3, 'xyz']);
        for (let i = 1; i <= 3; i++) await enqueueRows(producer, other, [i]);
        fleet.start(POISON);

        await waitUntil(`${stream} to be parked`, async () => (await statusOf(a, stream)).blocked !== null, {
          timeoutMs: 30_000,
        });
        const status = await statusOf(a, stream);
        assert.equal(status.blocked?.seq, 2);
        assert.match(status.blocked?.reason ?? '', /duplicate key value violates unique constraint/);
        assert.deepEqual([status.committedSeq, status.enqueuedSeq, status.pending], [1, 3, 2]);
        assert.equal(status.highWatermark, '1');
        // Retried POISON_RETRIES times before being parked (by each drain of the stream running at
        // once, one per kick being worked on), and parked once, logged with the reason. The log
        // lines may arrive through the pipe a little after Redis says blocked.
        await waitUntil('the park to be logged', async () => parkedLogs(fleet).length >= 1, {
          timeoutMs: 5000,
        });
        const retries = fleet.logLines(/batch failed; retrying/).filter((l) => JSON.parse(l).seq === 2);
        assert.ok(retries.length >= 2, `${retries.length} retries of the poison batch`);
        assert.match(parkedLogs(fleet)[0] as string, /duplicate key/);

        // Other streams carry on; the blocked one stays put (no later batch jumps the queue).
        await waitUntil(
          'the other stream',
          async () => (await committedSeqs(db, [otherStream])).get(otherStream) === 3,
          { timeoutMs: 20_000 },
        );
        await sleep(1200); // a few sweeps
        assert.equal(parkedLogs(fleet).length, 1, 'parked once, whichever drains retried it');
        assert.deepEqual(await ids(db, schema, 'codes'), [1]);
        assert.equal((await statusOf(a, stream)).committedSeq, 1);

        // The CLI says so too, with exit code 3; skipping the wrong batch is refused.
        const cli = await runCli(['status'], { connection });
        assert.equal(cli.code, 3, cli.stderr);
        assert.match(cli.stdout, new RegExp(`${stream}: BLOCKED`));
        assert.match(cli.stdout, /blocked at batch 2 since .*duplicate key value violates unique constraint/);
        assert.match(cli.stdout, new RegExp(`${otherStream}: up to date`));
        const wrong = await runCli(['skip', stream, '--seq', '3'], { connection });
        assert.equal(wrong.code, 2);
        assert.match(wrong.stderr, /the next batch is 2, not 3/);
        assert.equal((await statusOf(a, stream)).committedSeq, 1);

        // skip: recorded with its reason, and the batches after it apply.
        assert.equal(await a.skip(stream), 2);
        const skipped = await db.query(
          'SELECT seq::int AS seq, batch_id, reason FROM bulk_ingest.skipped_batches WHERE stream = $1',
          [stream],
        );
        assert.equal(skipped.rows.length, 1);
        assert.equal(skipped.rows[0].seq, 2);
        assert.match(skipped.rows[0].reason, /duplicate key/);
        await waitUntil(
          'the batch after the skipped one',
          async () => (await committedSeqs(db, [stream])).get(stream) === 3,
          { timeoutMs: 20_000 },
        );
        assert.deepEqual(await ids(db, schema, 'codes'), [1, 3]);
        const after = await statusOf(a, stream);
        assert.equal(after.blocked, null);
        assert.equal(after.highWatermark, '3');
        const ok = await runCli(['status', stream], { connection });
        assert.equal(ok.code, 0, ok.stdout + ok.stderr);
      } finally {
        await a.close();
        await producer.close();
      }
    });
  });

  it('retry applies a parked batch once its cause is fixed (and parks it again while it is not)', {
    timeout: 90_000,
  }, async () => {
    await withQueueFixture('queue_poison_retry', async ({ schema, connection, fleet, db }) => {
      const users = defineTable({
        schema,
        name: 'users',
        columns: [
          { name: 'id', type: 'integer', primaryKey: true },
          { name: 'email', type: 'text', unique: true },
        ],
      });
      const stream = `${schema}.users`;
      const producer = new Producer({ redis: connection.redisUrl, ...connection });
      const a = admin(connection);
      try {
        await enqueueRows(producer, users, [1, 'a@x'], [2, 'b@x']);
        await enqueueRows(producer, users, [3, 'a@x']); // seq 2: unique violation on email
        await enqueueRows(producer, users, [4, 'c@x']);
        fleet.start(POISON);
        await waitUntil('the batch to be parked', async () => (await statusOf(a, stream)).blocked !== null, {
          timeoutMs: 30_000,
        });
        const first = await statusOf(a, stream);
        assert.equal(first.blocked?.seq, 2);
        assert.match(first.blocked?.reason ?? '', /duplicate key value violates unique constraint/);

        // Retry without fixing anything: tried again, parked again.
        await a.retry(stream);
        await waitUntil(
          'the batch to be parked again',
          async () =>
            ((await statusOf(a, stream)).blocked?.since.getTime() ?? 0) >
            (first.blocked?.since.getTime() ?? 0),
          { timeoutMs: 30_000 },
        );
        await waitUntil('the second park to be logged', async () => parkedLogs(fleet).length >= 2, {
          timeoutMs: 5000,
        });
        assert.equal(parkedLogs(fleet).length, 2, 'parked once per round');
        const retried = fleet.logLines(/batch failed; retrying/).filter((l) => JSON.parse(l).seq === 2);
        assert.ok(retried.length >= 4, `${retried.length} retries over the two parks`);
        assert.deepEqual(await ids(db, schema, 'users'), [1, 2]);

        // Fix the cause by hand, then retry: batch 2 and the one after it apply.
        await db.query(`DELETE FROM "${schema}".users WHERE id = 1`);
        await a.retry(stream);
        await waitUntil(
          'the retried batch and the next',
          async () => (await committedSeqs(db, [stream])).get(stream) === 3,
          { timeoutMs: 20_000 },
        );
        const rows = await db.query(`SELECT id, email FROM "${schema}".users ORDER BY id`);
        assert.deepEqual(rows.rows, [
          { id: 2, email: 'b@x' },
          { id: 3, email: 'a@x' },
          { id: 4, email: 'c@x' },
        ]);
        assert.equal((await statusOf(a, stream)).blocked, null);
        assert.equal(
          (
            await db.query('SELECT count(*)::int AS n FROM bulk_ingest.skipped_batches WHERE stream = $1', [
              stream,
            ])
          ).rows[0].n,
          0,
        );
      } finally {
        await a.close();
        await producer.close();
      }
    });
  });
});
