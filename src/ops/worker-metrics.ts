/**
 * Feeds a Worker into the metrics of metrics.ts: its events drive the counters and histograms,
 * and its view of Redis (plus one small PostgreSQL query) fills the state gauges at scrape time.
 */
import pg from 'pg';
import type { CommittedBatch } from '../queue/apply-stream.ts';
import { tableKey } from '../queue/batch-contract.ts';
import { skippedBatchCounts } from '../queue/committed-state.ts';
import type { StreamInfo } from '../queue/stream-store.ts';
import type { Worker, WorkerEvents } from '../queue/worker.ts';
import type { BatchPhase, PgbiMetrics, StateSnapshot } from './metrics.ts';

/** The `stream` label of a parked job that was too malformed to name its stream. */
export const UNKNOWN_STREAM = '(malformed job)';

export interface WorkerMetricsOptions {
  /**
   * Where `pgbi_stream_skipped_batches` is read from (one pooled connection, used at scrape
   * time). Without it, that gauge stays empty.
   */
  readonly databaseUrl?: string;
}

/** What the metrics need of a worker (a Worker is one). */
export type MetricsWorker = Pick<Worker, 'on' | 'off' | 'jobCounts' | 'streams'>;

/**
 * Counts `worker`'s events in `metrics` and makes its state the source of the state gauges.
 * Returns a function that detaches it again (and closes the PostgreSQL connection).
 */
export function attachWorkerMetrics(
  metrics: PgbiMetrics,
  worker: MetricsWorker,
  options: WorkerMetricsOptions = {},
): () => Promise<void> {
  const listeners: { [E in keyof WorkerEvents]?: (...args: WorkerEvents[E]) => void } = {
    committed: (batch) => recordCommitted(metrics, batch),
    duplicate: ({ stream }) => metrics.batches.inc({ stream, outcome: 'duplicate' }),
    retried: ({ stream }) => metrics.batches.inc({ stream, outcome: 'retried' }),
    parked: ({ stream }) => metrics.batches.inc({ stream: stream ?? UNKNOWN_STREAM, outcome: 'parked' }),
    redisGap: ({ stream }) => metrics.redisDataLoss.inc({ stream }),
  };
  for (const [event, listener] of Object.entries(listeners))
    worker.on(event as 'committed', listener as () => void);

  const pool = options.databaseUrl
    ? new pg.Pool({ connectionString: options.databaseUrl, max: 1, idleTimeoutMillis: 60_000 })
    : undefined;
  // A broken idle connection must not crash the worker: the next scrape reconnects.
  pool?.on('error', () => undefined);
  metrics.setStateLoader(() => loadSnapshot(worker, pool));

  return async () => {
    for (const [event, listener] of Object.entries(listeners))
      worker.off(event as 'committed', listener as () => void);
    metrics.setStateLoader(undefined);
    await pool?.end();
  };
}

function recordCommitted(metrics: PgbiMetrics, batch: CommittedBatch): void {
  const { stream, headers, report } = batch;
  metrics.batches.inc({ stream, outcome: 'committed' }, headers.length);
  metrics.batchesPerTransaction.observe(headers.length);
  for (const [table, rows] of report.rows) {
    metrics.rows.inc({ table: tableKey(table) }, rows);
    // inc by 0 too: a table's series exists from its first commit on (rate() needs a start).
    const rejected = report.rejected.filter(
      (r) => r.tableSchema === table.schema && r.tableName === table.name,
    );
    metrics.rejectedRows.inc({ table: tableKey(table) }, rejected.length);
  }
  metrics.bytes.inc(
    { stream },
    headers.reduce((sum, h) => sum + h.bytes, 0),
  );
  const phases: Record<BatchPhase, number> = { lock_wait: batch.lockWaitMs, ...report.phaseMs };
  for (const [phase, ms] of Object.entries(phases)) metrics.phaseSeconds.observe({ phase }, ms / 1000);
  const now = Date.now();
  for (const h of headers) metrics.latencySeconds.observe({ stream }, Math.max(0, now - h.enqueuedAt) / 1000);
  // inc by 0 too: the series exists from the stream's first commit on.
  for (const path of ['in_place', 'rebuild']) metrics.migrations.inc({ stream, path }, 0);
  metrics.redisDataLoss.inc({ stream }, 0); // the series exists (at 0) from the stream's first commit
  for (const m of report.migrations) {
    metrics.migrations.inc({ stream, path: m.path === 'in-place' ? 'in_place' : 'rebuild' });
    if (m.path === 'in-place') metrics.migrationLockWaitSeconds.observe(m.lockWaitMs / 1000);
  }
  if (report.cancelledBackends > 0)
    metrics.blockingBackends.inc({ action: 'cancelled' }, report.cancelledBackends);
  if (report.terminatedBackends > 0)
    metrics.blockingBackends.inc({ action: 'terminated' }, report.terminatedBackends);
}

/**
 * Most streams a scrape reports per-stream gauges for: blocked ones first, then by pending
 * batches, then by last commit. Bounds /metrics (and Prometheus's series) whatever the number of
 * streams; `status` lists them all.
 */
export const MAX_STREAM_SERIES = 500;

/** The streams worth a series, at most MAX_STREAM_SERIES of them. */
export function streamsToReport(streams: readonly StreamInfo[]): StreamInfo[] {
  if (streams.length <= MAX_STREAM_SERIES) return [...streams];
  const rank = (s: StreamInfo) => [s.blocked ? 1 : 0, s.pendingBatches, s.committedAt ?? 0];
  return [...streams]
    .sort((a, b) => {
      const [x, y] = [rank(a), rank(b)];
      return (
        (y[0] as number) - (x[0] as number) ||
        (y[1] as number) - (x[1] as number) ||
        (y[2] as number) - (x[2] as number)
      );
    })
    .slice(0, MAX_STREAM_SERIES);
}

async function loadSnapshot(worker: MetricsWorker, pool: pg.Pool | undefined): Promise<StateSnapshot> {
  const [jobCounts, all] = await Promise.all([worker.jobCounts(), worker.streams()]);
  const streams = streamsToReport(all);
  const skipped = pool
    ? await skippedBatchCounts(
        pool,
        streams.map((s) => s.stream),
      )
    : null;
  return { jobCounts, streams, skipped, at: Date.now() };
}
