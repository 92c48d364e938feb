/**
 * Every metric pg-bulk-ingest exports, defined in this one file so that the dashboards and the
 * code can be checked against each other (test/unit/dashboards.test.ts); docs/operations.md
 * says what each one means.
 *
 * Two kinds:
 * - Event metrics (counters, histograms) count what *this process* did: aggregate them across
 *   workers with `sum`.
 * - State gauges (queue depth, lag, blocked, last commit, skipped) are read from Redis and
 *   PostgreSQL at scrape time and describe the whole cluster: every worker reports the same
 *   value, so aggregate them with `max by (stream)`, never `sum`.
 * Labels are bounded: stream, table, outcome, phase, state, action; never a batch or a seq.
 */
import { Counter, collectDefaultMetrics, Gauge, Histogram, Registry } from 'prom-client';
import type { BatchReport } from '../ingest/ingest-batch.ts';
import type { StreamInfo } from '../queue/stream-store.ts';
import { withTimeout } from './with-timeout.ts';

/** Where a batch's time goes: waiting for the advisory locks, then the core's phases. */
export type BatchPhase = 'lock_wait' | keyof BatchReport['phaseMs'];

/** The names of the metrics defined here (the default process metrics come on top). */
export const METRIC_NAMES = [
  'pgbi_batches_total',
  'pgbi_committed_rows_total',
  'pgbi_rejected_rows_total',
  'pgbi_committed_bytes_total',
  'pgbi_batch_phase_duration_seconds',
  'pgbi_batches_per_transaction',
  'pgbi_enqueue_to_commit_seconds',
  'pgbi_table_migrations_total',
  'pgbi_migration_lock_wait_seconds',
  'pgbi_blocking_backends_total',
  'pgbi_redis_data_loss_total',
  'pgbi_state_collect_errors_total',
  'pgbi_queue_jobs',
  'pgbi_stream_lag_batches',
  'pgbi_stream_pending_bytes',
  'pgbi_stream_blocked',
  'pgbi_stream_last_commit_age_seconds',
  'pgbi_stream_skipped_batches',
] as const;
export type MetricName = (typeof METRIC_NAMES)[number];

/** The cluster's state as one scrape sees it. */
export interface StateSnapshot {
  /** BullMQ job counts by state (wait, active, delayed, failed, completed, prioritized). */
  readonly jobCounts: Readonly<Record<string, number>>;
  readonly streams: readonly StreamInfo[];
  /** Batches skipped by an operator, per stream; null when this process cannot tell. */
  readonly skipped: ReadonlyMap<string, number> | null;
  /** When the snapshot was taken, ms since the epoch. */
  readonly at: number;
}

export type StateLoader = () => Promise<StateSnapshot>;

export interface MetricsOptions {
  /** Add prom-client's default process and Node.js metrics. @default true */
  readonly defaultMetrics?: boolean;
  /** How long a scrape waits for Redis and PostgreSQL before reporting the last values. @default 3000 */
  readonly stateTimeoutMs?: number;
}

/** One snapshot serves every state gauge of a scrape: they are collected concurrently. */
const SNAPSHOT_REUSE_MS = 1000;

const PHASE_BUCKETS = [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300];
const LATENCY_BUCKETS = [0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600];

export class PgbiMetrics {
  readonly registry = new Registry();

  readonly batches = new Counter({
    name: 'pgbi_batches_total',
    help: 'Batches handled by this worker, by stream and outcome (committed, duplicate, retried, parked)',
    labelNames: ['stream', 'outcome'] as const,
    registers: [this.registry],
  });

  readonly rows = new Counter({
    name: 'pgbi_committed_rows_total',
    help: 'Rows committed by this worker, by destination table (schema.table)',
    labelNames: ['table'] as const,
    registers: [this.registry],
  });

  readonly rejectedRows = new Counter({
    name: 'pgbi_rejected_rows_total',
    help: 'Rows quarantined in bulk_ingest.rejected_rows (BadRows.QUARANTINE) by this worker, by table (schema.table)',
    labelNames: ['table'] as const,
    registers: [this.registry],
  });

  readonly bytes = new Counter({
    name: 'pgbi_committed_bytes_total',
    help: 'Wire (JSON) bytes of the batches committed by this worker, by stream',
    labelNames: ['stream'] as const,
    registers: [this.registry],
  });

  readonly phaseSeconds = new Histogram({
    name: 'pgbi_batch_phase_duration_seconds',
    help: 'Time a committed batch spent in each phase: lock_wait, migrate, copy, merge, commit, isolate (finding bad rows under BadRows.QUARANTINE)',
    labelNames: ['phase'] as const,
    buckets: PHASE_BUCKETS,
    registers: [this.registry],
  });

  readonly batchesPerTransaction = new Histogram({
    name: 'pgbi_batches_per_transaction',
    help: 'Batches committed per transaction by this worker (consecutive pending batches of a stream are coalesced)',
    buckets: [1, 2, 5, 10, 20, 50, 100, 200, 500],
    registers: [this.registry],
  });

  readonly latencySeconds = new Histogram({
    name: 'pgbi_enqueue_to_commit_seconds',
    help: 'Time from a batch being enqueued by its producer to its COMMIT, by stream',
    labelNames: ['stream'] as const,
    buckets: LATENCY_BUCKETS,
    registers: [this.registry],
  });

  readonly migrations = new Counter({
    name: 'pgbi_table_migrations_total',
    help: 'Tables migrated by the batches this worker committed, by stream and path (in_place: altered under a short lock; rebuild: built and swapped in)',
    labelNames: ['stream', 'path'] as const,
    registers: [this.registry],
  });

  readonly migrationLockWaitSeconds = new Histogram({
    name: 'pgbi_migration_lock_wait_seconds',
    help: 'Time an in-place migration waited for its ALTER lock (short lock timeouts, retried with backoff)',
    buckets: PHASE_BUCKETS,
    registers: [this.registry],
  });

  readonly blockingBackends = new Counter({
    name: 'pgbi_blocking_backends_total',
    help: 'Backends blocking a table swap that this worker cancelled or terminated, by action',
    labelNames: ['action'] as const,
    registers: [this.registry],
  });

  readonly redisDataLoss = new Counter({
    name: 'pgbi_redis_data_loss_total',
    help: 'Times this worker found that Redis had lost data of a stream (batches acknowledged before the loss may be lost; see status), by stream',
    labelNames: ['stream'] as const,
    registers: [this.registry],
  });

  readonly collectErrors: Counter = new Counter({
    name: 'pgbi_state_collect_errors_total',
    help: 'Scrapes whose Redis or PostgreSQL state could not be read in time (the state gauges kept their last values)',
    registers: [this.registry],
    collect: () => this.#currentSnapshot().then(() => undefined), // so this scrape's failure is counted in it
  });

  readonly queueJobs = this.#stateGauge(
    'pgbi_queue_jobs',
    'BullMQ jobs (kicks and foreign batch jobs) by state, cluster-wide',
    ['state'],
    (g, s) => {
      for (const [state, count] of Object.entries(s.jobCounts)) g.set({ state }, count);
    },
  );

  readonly streamLag = this.#stateGauge(
    'pgbi_stream_lag_batches',
    'Batches enqueued and not yet committed, by stream',
    ['stream'],
    (g, s) => {
      for (const info of s.streams) g.set({ stream: info.stream }, info.pendingBatches);
    },
  );

  readonly streamPendingBytes = this.#stateGauge(
    'pgbi_stream_pending_bytes',
    'Wire bytes of the batches waiting in Redis, by stream',
    ['stream'],
    (g, s) => {
      for (const info of s.streams) g.set({ stream: info.stream }, info.pendingBytes);
    },
  );

  readonly streamBlocked = this.#stateGauge(
    'pgbi_stream_blocked',
    '1 when the stream is stopped at a parked batch (until skip or retry), else 0',
    ['stream'],
    (g, s) => {
      for (const info of s.streams) g.set({ stream: info.stream }, info.blocked ? 1 : 0);
    },
  );

  readonly streamLastCommitAge = this.#stateGauge(
    'pgbi_stream_last_commit_age_seconds',
    'Seconds since the stream last committed a batch (absent until its first commit)',
    ['stream'],
    (g, s) => {
      for (const info of s.streams)
        if (info.committedAt !== null)
          g.set({ stream: info.stream }, Math.max(0, (s.at - info.committedAt) / 1000));
    },
  );

  readonly streamSkipped = this.#stateGauge(
    'pgbi_stream_skipped_batches',
    'Batches an operator skipped so far (bulk_ingest.skipped_batches), by stream, cluster-wide',
    ['stream'],
    (g, s) => {
      if (s.skipped === null) return;
      for (const info of s.streams) g.set({ stream: info.stream }, s.skipped.get(info.stream) ?? 0);
    },
  );

  readonly #stateTimeoutMs: number;
  #load: StateLoader | undefined;
  #snapshot: { readonly startedAt: number; readonly promise: Promise<StateSnapshot | null> } | undefined;

  constructor(options: MetricsOptions = {}) {
    this.#stateTimeoutMs = options.stateTimeoutMs ?? 3000;
    if (options.defaultMetrics ?? true) collectDefaultMetrics({ register: this.registry });
    // Known label values start at 0, so a dashboard shows 0 rather than "no data".
    for (const action of ['cancelled', 'terminated']) this.blockingBackends.inc({ action }, 0);
  }

  /** Where the state gauges read from at scrape time; without a loader they stay empty. */
  setStateLoader(load: StateLoader | undefined): void {
    this.#load = load;
    this.#snapshot = undefined;
  }

  /** Every metric name this registry serves, default metrics included. */
  names(): string[] {
    return this.registry.getMetricsAsArray().map((metric) => metric.name);
  }

  #stateGauge<L extends string>(
    name: MetricName,
    help: string,
    labelNames: readonly L[],
    fill: (gauge: Gauge<L>, snapshot: StateSnapshot) => void,
  ): Gauge<L> {
    const metrics = this;
    return new Gauge<L>({
      name,
      help,
      labelNames,
      registers: [this.registry],
      async collect() {
        const snapshot = await metrics.#currentSnapshot();
        if (snapshot === null) return; // keep the last values; the error is counted
        this.reset(); // streams that are gone disappear
        fill(this, snapshot);
      },
    });
  }

  #currentSnapshot(): Promise<StateSnapshot | null> {
    const load = this.#load;
    if (!load) return Promise.resolve(null);
    const now = Date.now();
    if (this.#snapshot && now - this.#snapshot.startedAt < SNAPSHOT_REUSE_MS) return this.#snapshot.promise;
    const promise = withTimeout(load(), this.#stateTimeoutMs, 'state not read').catch(() => {
      this.collectErrors.inc();
      return null;
    });
    this.#snapshot = { startedAt: now, promise };
    return promise;
  }
}

/** Builds the registry with every metric above (and, by default, the process metrics). */
export function createMetrics(options: MetricsOptions = {}): PgbiMetrics {
  return new PgbiMetrics(options);
}
