/**
 * Every dashboard panel's query returns data from a real Prometheus scraping a real worker:
 * Prometheus (Debian package `prometheus`) runs with grafana/prometheus.yml's worker job
 * pointed at an in-process worker, a short ingest runs, and each query goes through the HTTP API.
 * Skipped when the `prometheus` binary is missing.
 */
import assert from 'node:assert/strict';
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { parse, stringify } from 'yaml';
import { defineTable, Producer } from '../../src/index.ts';
import { panelQueries } from '../helpers/dashboards.ts';
import { freePort } from '../helpers/free-port.ts';
import { dropSchema, uniqueName, withClient } from '../helpers/pg.ts';
import { cleanQueue, REDIS_URL, uniqueQueue } from '../helpers/queue.ts';
import { type ServedWorker, startServedWorker } from '../helpers/served-worker.ts';
import { waitUntil } from '../helpers/wait.ts';

const HAVE_PROMETHEUS = !spawnSync('prometheus', ['--version']).error;
const SCRAPE_INTERVAL_S = 1;
/** What Grafana's $__rate_interval would be here: at least four scrape intervals. */
const RATE_INTERVAL = '30s';

interface QueryResult {
  status: string;
  error?: string;
  data?: { result: { metric: Record<string, string>; value: [number, string] }[] };
}

/** grafana/prometheus.yml with its worker job scraping `target` (the other jobs have nothing to scrape here). */
function scrapeConfigFor(target: string): string {
  const config = parse(readFileSync('grafana/prometheus.yml', 'utf8')) as {
    global?: object;
    scrape_configs: { job_name: string }[];
  };
  const worker = config.scrape_configs.find((job) => job.job_name === 'pgbi-worker');
  assert.ok(worker, 'grafana/prometheus.yml has no pgbi-worker job');
  return stringify({
    global: { scrape_interval: `${SCRAPE_INTERVAL_S}s`, evaluation_interval: `${SCRAPE_INTERVAL_S}s` },
    scrape_configs: [{ job_name: worker.job_name, static_configs: [{ targets: [target] }] }],
  });
}

describe('dashboards: every panel query returns data from Prometheus', {
  skip: HAVE_PROMETHEUS ? false : 'prometheus is not installed (Debian: apt-get install prometheus)',
}, () => {
  const schema = uniqueName('dashq');
  const names = uniqueQueue();
  const ORDER_COLUMNS = [
    { name: 'id', type: 'bigint', primaryKey: true },
    { name: 'code', type: 'varchar(3)' },
  ];
  const orders = defineTable({ schema, name: 'orders', columns: ORDER_COLUMNS });
  const dir = mkdtempSync(join(tmpdir(), 'pgbi-prometheus-'));
  let producer: Producer;
  let ops: ServedWorker;
  let prometheus: ChildProcess | undefined;
  let api = '';

  async function query(expr: string): Promise<QueryResult> {
    const response = await fetch(`${api}/api/v1/query?query=${encodeURIComponent(expr)}`);
    return (await response.json()) as QueryResult;
  }

  /** Waits until Prometheus has scraped the worker `count` more times. */
  async function scrapes(count: number) {
    const until = Date.now() / 1000 + count * SCRAPE_INTERVAL_S;
    const lastScrape = async () =>
      Number((await query('timestamp(up{job="pgbi-worker"})')).data?.result[0]?.value[1] ?? 0);
    await waitUntil(`${count} scrapes`, async () => (await lastScrape()) >= until, { timeoutMs: 15_000 });
  }

  before(async () => {
    if (!HAVE_PROMETHEUS) return;
    producer = new Producer({ redis: REDIS_URL, ...names });
    ops = await startServedWorker(names, { concurrency: 1, poisonRetries: 0, shutdownTimeoutMs: 2000 });
    writeFileSync(join(dir, 'prometheus.yml'), scrapeConfigFor(`127.0.0.1:${ops.port}`));
    const port = await freePort();
    api = `http://127.0.0.1:${port}`;
    prometheus = spawn(
      'prometheus',
      [
        `--config.file=${join(dir, 'prometheus.yml')}`,
        `--storage.tsdb.path=${join(dir, 'data')}`,
        `--web.listen-address=127.0.0.1:${port}`,
        '--log.level=error',
      ],
      { stdio: 'ignore' },
    );
    await waitUntil(
      'Prometheus ready',
      async () => (await fetch(`${api}/-/ready`).catch(() => undefined))?.ok === true,
      { timeoutMs: 15_000 },
    );
  });

  after(async () => {
    if (!HAVE_PROMETHEUS) return;
    if (prometheus && prometheus.exitCode === null) {
      prometheus.kill('SIGTERM');
      await once(prometheus, 'exit');
    }
    rmSync(dir, { recursive: true, force: true });
    await ops.close();
    await producer.close();
    await cleanQueue(names);
    await dropSchema(schema);
  });

  it('after a short ingest (committed batches, a migration, a parked one)', { timeout: 60_000 }, async () => {
    // Counters must be seen before and after they grow for rate() to be more than 0.
    const stream = `${schema}.orders`;
    await producer.enqueue({ tables: [orders], highWatermark: 1, rows: [[orders, [1, 'a']]] });
    await waitUntil('first batch', async () => (await producer.streamInfo(stream)).committedSeq === 1, {
      timeoutMs: 15_000,
    });
    await scrapes(2);
    const wider = defineTable({
      schema,
      name: 'orders',
      columns: [...ORDER_COLUMNS, { name: 'note', type: 'text' }],
    });
    for (let i = 2; i <= 4; i++)
      await producer.enqueue({ tables: [wider], highWatermark: i, rows: [[wider, [i, 'b', 'x']]] });
    // A value only PostgreSQL refuses (a CHECK the definition does not know): parked by the worker.
    await waitUntil('batches 2-4', async () => (await producer.streamInfo(stream)).committedSeq === 4, {
      timeoutMs: 15_000,
    });
    await withClient((c) =>
      c.query(`ALTER TABLE "${schema}".orders ADD CONSTRAINT no_z CHECK (code <> 'z')`),
    );
    await producer.enqueue({ tables: [wider], highWatermark: 5, rows: [[wider, [5, 'z', 'x']]] });
    await waitUntil(
      'the poison batch parked',
      async () => (await producer.streamInfo(stream)).blocked !== null,
      { timeoutMs: 15_000 },
    );
    await scrapes(2);

    const failures: string[] = [];
    for (const q of panelQueries()) {
      const expr = q.expr.replaceAll('$__rate_interval', RATE_INTERVAL);
      const result = await query(expr);
      const values = (result.data?.result ?? []).map((r) => Number(r.value[1]));
      if (result.status !== 'success') failures.push(`${q.panel} (${q.refId}): ${result.error}`);
      else if (!values.some((v) => !Number.isNaN(v)))
        failures.push(`${q.panel} (${q.refId}): no data for ${expr}`);
    }
    assert.deepEqual(failures, []);
  });
});
