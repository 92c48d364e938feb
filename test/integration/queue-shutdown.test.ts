/**
 * G8 graceful shutdown: SIGTERM to a worker process in the middle of a batch. It stops taking
 * jobs, finishes the batch (or abandons it when SHUTDOWN_TIMEOUT_MS runs out: it rolls back) and
 * exits 0; the batch ends up committed exactly once, by it or by the next worker.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { describe, it } from 'node:test';
import type pg from 'pg';
import { defineTable, type IngestTable, ingest, Producer, Upsert } from '../../src/index.ts';
import { REPO_ROOT } from '../helpers/doc-blocks.ts';
import { DATABASE_URL } from '../helpers/pg.ts';
import { cleanQueue, REDIS_URL, uniqueQueue } from '../helpers/queue.ts';
import { withQueueFixture } from '../helpers/queue-fixture.ts';
import { committedSeqs } from '../helpers/stream-state.ts';
import { waitUntil } from '../helpers/wait.ts';

const ROWS = 10;

/** A table without a key taking plain inserts (a batch applied twice would show), whose COPY sleeps. */
async function slowTable(db: pg.ClientBase, schema: string, seconds: number): Promise<IngestTable> {
  const t = defineTable({
    schema,
    name: 't',
    columns: [
      { name: 'batch', type: 'integer' },
      { name: 'n', type: 'integer' },
    ],
  });
  await ingest(db, [t], () => []);
  await db.query(`
    CREATE FUNCTION "${schema}".slow() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN PERFORM pg_sleep(${seconds}); RETURN NULL; END $$;
    CREATE TRIGGER slow BEFORE INSERT ON "${schema}".t FOR EACH STATEMENT EXECUTE FUNCTION "${schema}".slow();`);
  return t;
}

function enqueueBatch(producer: Producer, t: IngestTable, id: number) {
  return producer.enqueue({
    tables: [t],
    highWatermark: id,
    rows: Array.from({ length: ROWS }, (_, n) => [t, [id, n]] as const),
    options: { upsert: Upsert.OFF },
  });
}

/** Waits until some backend is sleeping in the trigger, i.e. a worker is in the middle of a batch. */
async function waitMidBatch(db: pg.ClientBase, schema: string): Promise<void> {
  await waitUntil(
    'a worker to be in the middle of a batch',
    async () =>
      (
        await db.query(`SELECT 1 FROM pg_stat_activity WHERE wait_event = 'PgSleep' AND query ILIKE $1`, [
          `%${schema}%`,
        ])
      ).rows.length > 0,
    { timeoutMs: 60_000 },
  );
}

async function batchesApplied(db: pg.ClientBase, schema: string): Promise<number[]> {
  const { rows } = await db.query(
    `SELECT batch, count(*)::int AS n FROM "${schema}".t GROUP BY batch ORDER BY batch`,
  );
  for (const r of rows) assert.equal(r.n, ROWS, `batch ${r.batch} has ${r.n} rows`);
  return rows.map((r) => r.batch);
}

describe('queue graceful shutdown (G8)', () => {
  it('finishes the current batch on SIGTERM, exits 0, and leaves the rest to other workers', {
    timeout: 90_000,
  }, async () => {
    await withQueueFixture('queue_sigterm_finish', async ({ schema, connection, fleet, db }) => {
      const t = await slowTable(db, schema, 1.5);
      const stream = `${schema}.t`;
      const producer = new Producer({ redis: connection.redisUrl, ...connection });
      try {
        for (let i = 1; i <= 3; i++) await enqueueBatch(producer, t, i);
        // One batch per transaction: "the current batch" is one batch.
        const worker = fleet.start({
          SHUTDOWN_TIMEOUT_MS: '20000',
          WORKER_CONCURRENCY: '1',
          COALESCE_MAX_BATCHES: '1',
        });
        await waitMidBatch(db, schema);
        const signalled = Date.now();
        const { exit } = await worker.stop(25_000);
        assert.deepEqual(exit, { code: 0, signal: null }, worker.output);
        assert.ok(Date.now() - signalled < 15_000);
        // The batch in flight was finished, and nothing after it was started.
        const committed = (await committedSeqs(db, [stream])).get(stream);
        assert.equal(committed, 1, 'the worker should finish its current batch, and take no other');
        assert.deepEqual(await batchesApplied(db, schema), [1]);

        fleet.start();
        await waitUntil('the rest', async () => (await committedSeqs(db, [stream])).get(stream) === 3, {
          timeoutMs: 30_000,
        });
        assert.deepEqual(await batchesApplied(db, schema), [1, 2, 3]);
      } finally {
        await producer.close();
      }
    });
  });

  it('abandons a batch that outlasts SHUTDOWN_TIMEOUT_MS, exits 0, and another worker commits it once', {
    timeout: 90_000,
  }, async () => {
    await withQueueFixture('queue_sigterm_abandon', async ({ schema, connection, fleet, db }) => {
      const t = await slowTable(db, schema, 4);
      const stream = `${schema}.t`;
      const producer = new Producer({ redis: connection.redisUrl, ...connection });
      try {
        await enqueueBatch(producer, t, 1);
        const worker = fleet.start({
          SHUTDOWN_TIMEOUT_MS: '500',
          WORKER_CONCURRENCY: '1',
          COALESCE_MAX_BATCHES: '1',
        });
        await waitMidBatch(db, schema);
        const signalled = Date.now();
        const { exit } = await worker.stop(10_000);
        const took = Date.now() - signalled;
        assert.deepEqual(exit, { code: 0, signal: null }, worker.output);
        assert.ok(
          took < 3500,
          `took ${took} ms to stop: it should abandon the batch after 500 ms, not finish it`,
        );
        assert.match(worker.output, /shutdown timeout: abandoning/);
        // Its transaction rolls back once the backend notices the client is gone.
        await waitUntil(
          'the abandoned transaction to end',
          async () =>
            (
              await db.query(
                `SELECT 1 FROM pg_stat_activity WHERE query ILIKE $1 AND pid <> pg_backend_pid() AND state <> 'idle'`,
                [`%${schema}%`],
              )
            ).rows.length === 0,
          { timeoutMs: 15_000 },
        );
        assert.equal(
          (await committedSeqs(db, [stream])).get(stream),
          0,
          'the abandoned batch must not commit',
        );
        assert.deepEqual(await batchesApplied(db, schema), []);

        fleet.start();
        await waitUntil(
          'the abandoned batch to be redone',
          async () => (await committedSeqs(db, [stream])).get(stream) === 1,
          { timeoutMs: 40_000 },
        );
        assert.deepEqual(await batchesApplied(db, schema), [1]);
      } finally {
        await producer.close();
      }
    });
  });

  it('lets a process that closes an in-process Worker exit promptly (no timer left behind)', {
    timeout: 60_000,
  }, async () => {
    const worker = new URL('../../src/queue/worker.ts', import.meta.url).href;
    const names = uniqueQueue();
    const options = { databaseUrl: DATABASE_URL, redis: REDIS_URL, ...names, shutdownTimeoutMs: 8000 };
    const script = `
        import { Worker } from '${worker}';
        import { pino } from 'pino';
        const w = new Worker({ ...${JSON.stringify(options)}, logger: pino({ level: 'silent' }) });
        await w.start();
        await w.close();
        console.log('closed');`;
    const child = spawn(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], {
      cwd: REPO_ROOT,
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    try {
      let closedAt = 0;
      child.stdout.on('data', (c: Buffer) => {
        if (c.toString().includes('closed')) closedAt = Date.now();
      });
      const timer = setTimeout(() => child.kill('SIGKILL'), 40_000);
      await new Promise((resolve) => child.once('exit', resolve));
      clearTimeout(timer);
      assert.ok(closedAt > 0, 'the worker did not close');
      const lingered = Date.now() - closedAt;
      assert.ok(lingered < 4000, `the process lingered ${lingered} ms after close()`);
    } finally {
      child.kill('SIGKILL');
      await cleanQueue(names);
    }
  });
});
