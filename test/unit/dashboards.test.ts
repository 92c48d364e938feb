/**
 * The Grafana dashboards and the code agree: every metric a panel queries is one the worker
 * exports (src/ops/metrics.ts or prom-client's default metrics), every metric defined there is
 * on a dashboard, and the provisioning files point where docker-compose.yml mounts them.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import { parse } from 'yaml';
import { createMetrics, METRIC_NAMES } from '../../src/ops/metrics.ts';
import {
  dashboardFiles,
  isExported,
  metricNamesIn,
  panelQueries,
  panelsOf,
  readDashboard,
} from '../helpers/dashboards.ts';

/** Series Prometheus itself adds to every scrape target. */
const PROMETHEUS_SERIES = ['up'];

const exported = new Map<string, string>([
  ...createMetrics()
    .registry.getMetricsAsArray()
    .map((m) => [m.name, String(m.type)] as const),
  ...PROMETHEUS_SERIES.map((name) => [name, 'gauge'] as const),
]);
const queries = panelQueries();

describe('dashboards: the PromQL extractor', () => {
  it('finds metric names and nothing else: not functions, keywords, labels, durations or variables', () => {
    assert.deepEqual(
      metricNamesIn(
        'histogram_quantile(0.95, sum by (le, phase) (rate(pgbi_batch_phase_duration_seconds_bucket{job=~"a|b"}[$__rate_interval] offset 5m)))',
      ),
      ['pgbi_batch_phase_duration_seconds_bucket'],
    );
    assert.deepEqual(metricNamesIn('sum(a_total) / on (stream) group_left sum(b) > bool 1 or vector(0)'), [
      'a_total',
      'b',
    ]);
    assert.deepEqual(metricNamesIn('max by (stream) (pgbi_stream_blocked) and pgbi_queue_jobs'), [
      'pgbi_stream_blocked',
      'pgbi_queue_jobs',
    ]);
  });

  it('maps histogram series back to their histogram and rejects names the code does not export', () => {
    assert.equal(isExported('pgbi_enqueue_to_commit_seconds_bucket', exported), true);
    assert.equal(isExported('pgbi_enqueue_to_commit_seconds_count', exported), true);
    assert.equal(isExported('pgbi_no_such_metric_total', exported), false);
    assert.equal(isExported('pgbi_committed_rows_total_bucket', exported), false, 'a counter has no buckets');
  });
});

describe('dashboards: every panel queries metrics the code exports', () => {
  it('has dashboards with queries', () => {
    assert.ok(dashboardFiles().length > 0, 'no dashboard in grafana/dashboards');
    assert.ok(queries.length > 0, 'no panel query found');
  });

  for (const q of queries) {
    it(`${q.panel} (${q.refId}): ${q.expr}`, () => {
      const names = metricNamesIn(q.expr);
      assert.ok(names.length > 0, 'the query names no metric');
      const unknown = names.filter((name) => !isExported(name, exported));
      assert.deepEqual(
        unknown,
        [],
        `${q.file}, panel "${q.panel}" queries metrics src/ops/metrics.ts does not export`,
      );
    });
  }

  it('shows every metric src/ops/metrics.ts defines somewhere', () => {
    const used = new Set(
      queries.flatMap((q) => metricNamesIn(q.expr)).map((n) => n.replace(/_(?:bucket|sum|count)$/, '')),
    );
    assert.deepEqual(
      METRIC_NAMES.filter((name) => !used.has(name)),
      [],
    );
  });

  it('METRIC_NAMES lists exactly the pgbi_ metrics the registry holds', () => {
    const registered = createMetrics({ defaultMetrics: false }).names();
    assert.deepEqual([...registered].sort(), [...METRIC_NAMES].sort());
    for (const name of registered) assert.match(name, /^pgbi_[a-z0-9_]+$/);
  });
});

describe('dashboards: provisioning', () => {
  const datasources = parse(readFileSync('grafana/provisioning/datasources/prometheus.yml', 'utf8'));
  const providers = parse(readFileSync('grafana/provisioning/dashboards/dashboards.yml', 'utf8'));
  const compose = parse(readFileSync('docker-compose.yml', 'utf8'), { merge: true });

  it('every panel uses the provisioned Prometheus datasource, by its fixed uid', () => {
    const uids = (datasources.datasources as { uid: string; type: string }[])
      .filter((d) => d.type === 'prometheus')
      .map((d) => d.uid);
    assert.equal(uids.length, 1);
    for (const q of queries) assert.equal(q.datasourceUid, uids[0], `${q.file}, panel "${q.panel}"`);
  });

  it('dashboards have unique uids and panel ids, and every non-row panel has a query', () => {
    const uids = dashboardFiles().map((f) => readDashboard(f).uid);
    assert.equal(new Set(uids).size, uids.length);
    for (const file of dashboardFiles()) {
      const panels = panelsOf(readDashboard(file)) as {
        id?: number;
        type?: string;
        title?: string;
        targets?: unknown[];
      }[];
      const ids = panels.map((p) => p.id);
      assert.equal(new Set(ids).size, ids.length, `${file}: duplicate panel ids`);
      for (const p of panels)
        if (p.type !== 'row')
          assert.ok((p.targets ?? []).length > 0, `${file}: panel "${p.title}" has no query`);
    }
  });

  it('the dashboard provider reads the folder docker-compose.yml mounts grafana/dashboards on', () => {
    const paths = (providers.providers as { options: { path: string } }[]).map((p) => p.options.path);
    const mounts = (compose.services.grafana.volumes as string[]).map((v) => v.split(':'));
    for (const path of paths) {
      const mount = mounts.find(([, target]) => target === path);
      assert.ok(mount, `no volume mounts anything on ${path}`);
      assert.equal(mount[0], './grafana/dashboards');
    }
  });
});
