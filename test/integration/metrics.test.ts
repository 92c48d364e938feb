/**
 * A worker's /metrics after a known run says exactly what happened; /healthz and /readyz tell
 * the truth; the output passes `promtool check metrics`; the CLI worker serves all three.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { after, before, describe, it } from 'node:test';
import pg from 'pg';
import { pino } from 'pino';
import { defineTable, Producer, StreamAdmin } from '../../src/index.ts';
import { startOpsServer } from '../../src/ops/http-server.ts';
import { createMetrics } from '../../src/ops/metrics.ts';
import { WorkerProcess } from '../../src/ops/worker-processes.ts';
import { StreamApplier } from '../../src/queue/apply-stream.ts';
import { committedState } from '../../src/queue/committed-state.ts';
import { nextBatch } from '../../src/queue/stream-position.ts';
import { connectRedis, StreamStore } from '../../src/queue/stream-store.ts';
import { ChildOutput } from '../helpers/child-output.ts';
import { childEnv } from '../helpers/cli.ts';
import { freePort } from '../helpers/free-port.ts';
import { DATABASE_URL, dropSchema, uniqueName } from '../helpers/pg.ts';
import { cleanQueue, REDIS_URL, uniqueQueue } from '../helpers/queue.ts';
import { type ServedWorker, startServedWorker } from '../helpers/served-worker.ts';
import { waitUntil } from '../helpers/wait.ts';

/** Prometheus text format: the value of the sample `name{labels}` (labels matched exactly), if any. */
function sample(text: string, name: string, labels: Record<string, string> = {}): number | undefined {
  for (const line of text.split('\n')) {
    const match = /^([a-zA-Z_:][\w:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
    if (!match || match[1] !== name) continue;
    const got = Object.fromEntries(
      [...(match[2] ?? '').matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)].map((m) => [m[1], m[2]]),
    );
    if (
      Object.keys(got).length === Object.keys(labels).length &&
      Object.entries(labels).every(([k, v]) => got[k] === v)
    )
      return Number(match[3]);
  }
  return undefined;
}

async function get(port: number, path: string) {
  const response = await fetch(`http://127.0.0.1:${port}${path}`);
  return { status: response.status, text: await response.text() };
}

describe('metrics: a worker scraped after a known run', () => {
  const schema = uniqueName('metrics');
  const names = uniqueQueue();
  const column = (name: string, type: string, primaryKey = false) => ({ name, type, primaryKey });
  const orders = defineTable({
    schema,
    name: 'orders',
    columns: [column('id', 'bigint', true), column('total', 'numeric')],
  });
  const lines = defineTable({
    schema,
    name: 'order_lines',
    columns: [column('id', 'bigint', true), column('order_id', 'bigint')],
  });
  const events = defineTable({
    schema,
    name: 'events',
    columns: [column('id', 'bigint', true), column('kind', 'text')],
  });
  const eventsWider = defineTable({
    schema,
    name: 'events',
    columns: [column('id', 'bigint', true), column('kind', 'text'), column('source', 'text')],
  });
  const codes = defineTable({
    schema,
    name: 'codes',
    columns: [column('id', 'bigint', true), { ...column('code', 'varchar(3)'), unique: true }],
  });
  const [ordersStream, eventsStream, codesStream] = [orders, events, codes].map(
    (t) => `${schema}.${t.name}`,
  ) as [string, string, string];
  let producer: Producer;
  let ops: ServedWorker;

  before(async () => {
    producer = new Producer({ redis: REDIS_URL, ...names });
    // concurrency 1: with 2, two kicks of one stream can both try its poison batch (the second
    // waits on the stream lock, then fails too) and both park it, so `parked` would read 2.
    // shutdownTimeoutMs: close() keeps its timeout timer running even when it is not needed.
    ops = await startServedWorker(names, {
      concurrency: 1,
      coalesceMaxBatches: 1, // one transaction per batch: the phase counts below are per batch
      poisonRetries: 0,
      sweepIntervalMs: 500,
      shutdownTimeoutMs: 2000,
    });
  });

  after(async () => {
    await ops.close();
    await producer.close();
    await cleanQueue(names);
    await dropSchema(schema);
  });

  it('counts committed and parked batches, rows per table, phases, migrations, lag and blocked streams exactly', async () => {
    // orders: 3 batches over two tables (7 orders, 5 lines).
    const orderBatches: [number[], number[]][] = [
      [
        [1, 2],
        [10, 11, 12],
      ],
      [[3], [13, 14]],
      [[4, 5, 6, 7], []],
    ];
    for (const [i, [orderIds, lineIds]] of orderBatches.entries()) {
      const rows = [
        ...orderIds.map((id) => [orders, [id, '9.99']] as const),
        ...lineIds.map((id) => [lines, [id, orderIds[0]]] as const),
      ];
      await producer.enqueue({ tables: [orders, lines], highWatermark: i + 1, rows });
    }
    // events: the second batch adds a column, a migration (2 + 3 rows).
    await producer.enqueue({
      tables: [events],
      highWatermark: 1,
      rows: [
        [events, [1, 'a']],
        [events, [2, 'b']],
      ],
    });
    await producer.enqueue({
      tables: [eventsWider],
      highWatermark: 2,
      rows: [3, 4, 5].map((id) => [eventsWider, [id, 'c', 'web']] as const),
    });
    // codes: batch 2 is poison (a unique violation on code), so batch 3 waits behind it.
    await producer.enqueue({ tables: [codes], highWatermark: 1, rows: [[codes, [1, 'abc']]] });
    await producer.enqueue({ tables: [codes], highWatermark: 2, rows: [[codes, [2, 'abc']]] });
    await producer.enqueue({ tables: [codes], highWatermark: 3, rows: [[codes, [3, 'xyz']]] });

    await waitUntil(
      'orders and events committed, codes blocked',
      async () => {
        const [o, e, c] = await Promise.all(
          [ordersStream, eventsStream, codesStream].map((s) => producer.streamInfo(s)),
        );
        return o?.committedSeq === 3 && e?.committedSeq === 2 && c?.committedSeq === 1 && c.blocked !== null;
      },
      { timeoutMs: 20_000 },
    );
    const { status, text } = await get(ops.port, '/metrics');
    assert.equal(status, 200);
    const batches = (stream: string, outcome: string) =>
      sample(text, 'pgbi_batches_total', { stream, outcome });
    assert.deepEqual(
      [
        batches(ordersStream, 'committed'),
        batches(eventsStream, 'committed'),
        batches(codesStream, 'committed'),
      ],
      [3, 2, 1],
    );
    assert.equal(batches(codesStream, 'parked'), 1);
    assert.equal(batches(codesStream, 'retried'), undefined, 'poisonRetries 0: parked at once');
    assert.equal(batches(ordersStream, 'duplicate'), undefined);
    const rows = (table: string) =>
      sample(text, 'pgbi_committed_rows_total', { table: `${schema}.${table}` });
    assert.deepEqual([rows('orders'), rows('order_lines'), rows('events'), rows('codes')], [7, 5, 5, 1]);
    assert.ok((sample(text, 'pgbi_committed_bytes_total', { stream: ordersStream }) ?? 0) > 0);
    for (const phase of ['lock_wait', 'migrate', 'copy', 'merge', 'commit']) {
      assert.equal(sample(text, 'pgbi_batch_phase_duration_seconds_count', { phase }), 6, `phase ${phase}`);
    }
    assert.equal(sample(text, 'pgbi_enqueue_to_commit_seconds_count', { stream: ordersStream }), 3);
    // Adding a nullable column at the end: altered in place, not rebuilt.
    const migrations = (stream: string, path: string) =>
      sample(text, 'pgbi_table_migrations_total', { stream, path });
    assert.deepEqual([migrations(eventsStream, 'in_place'), migrations(eventsStream, 'rebuild')], [1, 0]);
    assert.deepEqual([migrations(ordersStream, 'in_place'), migrations(ordersStream, 'rebuild')], [0, 0]);
    assert.equal(sample(text, 'pgbi_migration_lock_wait_seconds_count'), 1);
    const lag = (stream: string) => sample(text, 'pgbi_stream_lag_batches', { stream });
    assert.deepEqual([lag(ordersStream), lag(eventsStream), lag(codesStream)], [0, 0, 2]);
    assert.equal(sample(text, 'pgbi_stream_blocked', { stream: ordersStream }), 0);
    assert.equal(sample(text, 'pgbi_stream_blocked', { stream: codesStream }), 1);
    assert.equal(sample(text, 'pgbi_stream_skipped_batches', { stream: codesStream }), 0);
    const age = sample(text, 'pgbi_stream_last_commit_age_seconds', { stream: ordersStream }) ?? -1;
    assert.ok(age >= 0 && age < 60, `last commit age ${age}`);
    assert.ok(sample(text, 'pgbi_queue_jobs', { state: 'wait' }) !== undefined);
    assert.equal(sample(text, 'pgbi_state_collect_errors_total'), 0);
    assert.ok((sample(text, 'process_resident_memory_bytes') ?? 0) > 0, 'default process metrics');
  });

  it('after `skip`: the skipped batch is counted, the stream unblocks and catches up', async () => {
    const admin = new StreamAdmin({ databaseUrl: DATABASE_URL, redis: REDIS_URL, ...names });
    try {
      assert.equal(await admin.skip(codesStream), 2);
    } finally {
      await admin.close();
    }
    await waitUntil(
      'codes batch 3 committed',
      async () => (await producer.streamInfo(codesStream)).committedSeq === 3,
      { timeoutMs: 20_000 },
    );
    await new Promise((resolve) => setTimeout(resolve, 1100)); // the next scrape reads fresh state
    const { text } = await get(ops.port, '/metrics');
    assert.equal(sample(text, 'pgbi_stream_skipped_batches', { stream: codesStream }), 1);
    assert.equal(sample(text, 'pgbi_stream_blocked', { stream: codesStream }), 0);
    assert.equal(sample(text, 'pgbi_stream_lag_batches', { stream: codesStream }), 0);
    assert.equal(sample(text, 'pgbi_batches_total', { stream: codesStream, outcome: 'committed' }), 2);
    assert.equal(sample(text, 'pgbi_committed_rows_total', { table: `${schema}.codes` }), 2);
  });

  it('passes `promtool check metrics` (only prom-client default gauges named *_total are flagged)', async (t) => {
    if (spawnSync('promtool', ['--version']).error) {
      t.skip('promtool is not installed (Debian: apt-get install prometheus)');
      return;
    }
    const { text } = await get(ops.port, '/metrics');
    const result = spawnSync('promtool', ['check', 'metrics'], { input: text, encoding: 'utf8' });
    const problems = `${result.stdout}${result.stderr}`.split('\n').filter((l) => l.trim());
    // prom-client's own nodejs_active_{handles,requests,resources}_total gauges break the _total rule.
    const known =
      /^nodejs_active_(handles|requests|resources)_total non-counter metrics should not have "_total" suffix$/;
    assert.deepEqual(
      problems.filter((l) => !known.test(l)),
      [],
      'promtool found problems',
    );
    assert.ok(
      result.status === 0 || (result.status === 3 && problems.length > 0),
      `promtool exited ${result.status}`,
    );
  });

  it('/healthz answers 200 and /readyz 200 with PostgreSQL and Redis ok', async () => {
    assert.equal((await get(ops.port, '/healthz')).status, 200);
    const ready = await get(ops.port, '/readyz');
    assert.equal(ready.status, 200);
    assert.deepEqual(JSON.parse(ready.text).checks, { postgres: 'ok', redis: 'ok' });
  });

  it('/readyz answers 503 naming the failing check, not its error (no token is needed to ask)', async () => {
    const server = await startOpsServer({
      port: 0,
      host: '127.0.0.1',
      registry: createMetrics({ defaultMetrics: false }).registry,
      readinessChecks: {
        postgres: async () => undefined,
        redis: async () => Promise.reject(new Error('connect ECONNREFUSED')),
      },
      logger: pino({ level: 'silent' }),
    });
    try {
      const ready = await get(server.port, '/readyz');
      assert.equal(ready.status, 503);
      assert.deepEqual(JSON.parse(ready.text).checks, { postgres: 'ok', redis: 'failed' });
      assert.doesNotMatch(ready.text, /ECONNREFUSED/);
    } finally {
      await server.close();
    }
  });

  it('reports a batch another worker committed first as a duplicate', async () => {
    const dupNames = uniqueQueue();
    const table = defineTable({ schema, name: 'dups', columns: [column('id', 'bigint', true)] });
    const stream = `${schema}.dups`;
    const dupProducer = new Producer({ redis: REDIS_URL, ...dupNames }); // no worker on this queue
    const pool = new pg.Pool({ connectionString: DATABASE_URL, max: 2 });
    const redis = connectRedis(REDIS_URL);
    try {
      await dupProducer.enqueue({ tables: [table], highWatermark: 1, rows: [[table, [1]]] });
      const store = new StreamStore(redis, dupNames.prefix);
      const header = await store.header(stream, 1);
      assert.ok(header);
      const duplicates: [string, number][] = [];
      const applier = new StreamApplier(pool, store, false, {
        onDuplicate: (s, seq) => duplicates.push([s, seq]),
      });
      const before = await committedState(pool, stream);
      const next = nextBatch(before, (await store.info(stream)).epochs);
      assert.ok(next);
      assert.equal((await applier.applyGroup(stream, next, before, [header]))?.seq, 1);
      assert.equal(
        await applier.applyGroup(stream, next, before, [header]),
        null,
        'a duplicate commits nothing',
      );
      assert.deepEqual(duplicates, [[stream, 1]]);
    } finally {
      await dupProducer.close();
      redis.disconnect();
      await pool.query('DELETE FROM bulk_ingest.stream_state WHERE stream = $1', [stream]);
      await pool.end();
      await cleanQueue(dupNames);
    }
  });
});

describe('metrics: the worker command serves the ops endpoints', () => {
  it('METRICS_PORT=0 picks a free port it logs; /healthz 200, /readyz 503 while Redis is unreachable', async () => {
    const deadRedisPort = await freePort();
    const worker = new WorkerProcess({
      env: childEnv({
        DATABASE_URL,
        REDIS_URL: `redis://127.0.0.1:${deadRedisPort}`,
        METRICS_PORT: '0',
        METRICS_HOST: '127.0.0.1',
        LOG_LEVEL: 'info',
      }),
      output: 'keep',
    });
    try {
      const [line] = await new ChildOutput(worker.child).waitFor(/^\{.*"msg":"ops server listening.*$/m);
      const port = (JSON.parse(line) as { port?: number }).port;
      assert.ok(port && port > 0, 'no "ops server listening" log line with the port');
      assert.equal((await get(port, '/healthz')).status, 200);
      const ready = await get(port, '/readyz');
      assert.equal(ready.status, 503);
      const checks = JSON.parse(ready.text).checks as Record<string, string>;
      assert.equal(checks.postgres, 'ok');
      assert.notEqual(checks.redis, 'ok');
    } finally {
      await worker.kill();
    }
  });
});
