/**
 * The demo, start to end: a check that PostgreSQL and Redis answer, a clean slate for its schema
 * and streams, two worker processes (unless producer-only), the synthetic feed enqueued at a
 * steady pace for `durationSeconds` through `Producer.ingest` (the queue twin of `ingest`) with a
 * live progress line, then waiting for the workers to catch up, a summary, and the workers
 * stopped with SIGTERM.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { type Batch, type Batches, HighWatermark, type Row } from '../../ingest/options.ts';
import { StreamAdmin, type StreamStatus } from '../../queue/admin.ts';
import { Producer } from '../../queue/producer.ts';
import type { ProgressLine } from '../progress.ts';
import { DemoTally, progressText, summaryText } from './demo-report.ts';
import { checkServices, countRows } from './preflight.ts';
import { resetDemoState } from './reset-state.ts';
import { type SyntheticBatchMetadata, type SyntheticFeed, syntheticFeed } from './synthetic-feed.ts';
import { type DemoWorker, startWorkers } from './worker-processes.ts';

export interface DemoConfig {
  readonly databaseUrl: string;
  readonly redisUrl: string;
  readonly queueName: string;
  readonly prefix: string;
  readonly schema: string;
  readonly durationSeconds: number;
  readonly producerOnly: boolean;
  readonly workers: number;
  /** The first worker's metrics port, the next +1, ...; 0 lets each pick a free port. */
  readonly metricsPort: number;
  readonly batchesPerSecond: number;
  readonly ordersPerBatch: number;
  readonly seed: number;
  readonly catchUpTimeoutSeconds: number;
}

export interface DemoIo {
  readonly out: (text: string) => void;
  readonly progress: ProgressLine;
  /** Aborted on Ctrl-C: stop producing, skip the catch-up, stop the workers. */
  readonly signal: AbortSignal;
}

export interface DemoResult {
  /** Every enqueued batch committed (no stream blocked, no worker lost). */
  readonly ok: boolean;
  readonly interrupted: boolean;
}

export async function runDemo(config: DemoConfig, io: DemoIo): Promise<DemoResult> {
  const { schema, seed, ordersPerBatch } = config;
  const feed = syntheticFeed({ schema, seed, ordersPerBatch });
  const streams = feed.streams.map((s) => s.name);
  const tables = Object.values(feed.tables);
  await checkServices(config);
  io.out(`Resetting schema ${schema} and streams ${streams.join(', ')} (queue ${config.queueName})\n`);
  await resetDemoState({ ...config, tables, streams });

  const names = { queueName: config.queueName, prefix: config.prefix };
  const producer = new Producer({ redis: config.redisUrl, ...names });
  const admin = new StreamAdmin({ databaseUrl: config.databaseUrl, redis: config.redisUrl, ...names });
  const lost = new AbortController(); // aborted with the reason when a worker dies mid-run
  let workers: DemoWorker[] = [];
  try {
    if (!config.producerOnly && !io.signal.aborted) workers = await startDemoWorkers(config, io, lost);
    const stopping = AbortSignal.any([io.signal, lost.signal]);
    const tally = new DemoTally();
    const started = performance.now();
    let statuses: StreamStatus[] = [];
    const refresh = async (phase: string) => {
      statuses = (await Promise.all(streams.map((s) => admin.status(s)))).flat();
      const elapsed = performance.now() - started;
      io.progress.update(progressText(tally, statuses, elapsed, config.durationSeconds * 1000, phase));
      return statuses;
    };
    await watch(produce(feed, producer, tally, config, stopping), () => refresh('producing'));
    const caughtUp = stopping.aborted
      ? false
      : await catchUp(refresh, config.catchUpTimeoutSeconds * 1000, stopping);
    await refresh('done');
    io.progress.clear();
    if (lost.signal.aborted) throw lost.signal.reason;
    const tableRows = await countRows(
      config.databaseUrl,
      schema,
      tables.map((t) => t.name),
    );
    const shown = workers.map((w) => ({ metricsPort: w.metricsPort(), logFile: w.logFile }));
    const elapsedMs = performance.now() - started;
    io.out(summaryText({ schema, elapsedMs, workers: shown, tableRows, statuses, tally, caughtUp }));
    return { ok: caughtUp, interrupted: io.signal.aborted };
  } finally {
    io.progress.clear();
    if (workers.length > 0) {
      io.out(`Stopping ${workers.length} workers (SIGTERM)...\n`);
      await Promise.all(workers.map((w) => w.stop(45_000)));
    }
    await producer.close();
    await admin.close();
  }
}

async function startDemoWorkers(
  config: DemoConfig,
  io: DemoIo,
  lost: AbortController,
): Promise<DemoWorker[]> {
  const env = {
    DATABASE_URL: config.databaseUrl,
    REDIS_URL: config.redisUrl,
    PGBI_QUEUE: config.queueName,
    PGBI_PREFIX: config.prefix,
  };
  const workers = startWorkers(config.workers, env, config.metricsPort, `${config.schema}-${process.pid}`);
  for (const worker of workers) {
    void worker.exited.then((exit) => {
      if (io.signal.aborted || lost.signal.aborted) return;
      const code = exit.code ?? exit.signal ?? 'unknown';
      lost.abort(new Error(`${worker.label} exited (${code}) during the demo:\n${worker.tail()}`));
    });
  }
  try {
    await Promise.all(workers.map((w) => w.waitUntilStarted(60_000, io.signal)));
  } catch (error) {
    // Not returned to runDemo, which would stop them: stop them here, or they keep the demo alive.
    await Promise.all(workers.map((w) => w.stop(45_000)));
    throw error;
  }
  if (!io.signal.aborted)
    io.out(`Started ${workers.length} workers (pids ${workers.map((w) => w.pid).join(', ')})\n`);
  return workers;
}

/** Both streams of the feed through `Producer.ingest`, paced, until the duration is over or `signal`. */
function produce(
  feed: SyntheticFeed,
  producer: Producer,
  tally: DemoTally,
  config: DemoConfig,
  signal: AbortSignal,
) {
  const pace = {
    deadline: Date.now() + config.durationSeconds * 1000,
    signal,
    intervalMs: 1000 / config.batchesPerSecond,
  };
  return Promise.all(
    feed.streams.map((stream) => {
      const record = (batch: Batch) =>
        tally.record(stream.name, (batch[2] as readonly Row[]).length, batch[1] as SyntheticBatchMetadata);
      return producer.ingest(stream.tables, paced(stream.batches, pace, record), {
        highWatermark: HighWatermark.LATEST,
      });
    }),
  );
}

/** Calls `tick` every half second until `work` settles; rethrows its failure. */
async function watch(work: Promise<unknown>, tick: () => Promise<unknown>): Promise<void> {
  let settled = false;
  const done = () => {
    settled = true;
  };
  work.then(done, done);
  while (!settled) {
    await Promise.race([work, sleep(500)]);
    await tick();
  }
  await work;
}

/** Waits until no stream has pending batches; false if one is blocked, time ran out, or `signal`. */
async function catchUp(
  refresh: (phase: string) => Promise<StreamStatus[]>,
  timeoutMs: number,
  signal: AbortSignal,
) {
  const until = Date.now() + timeoutMs;
  for (;;) {
    const statuses = await refresh('catching up');
    if (statuses.every((s) => s.pending === 0)) return true;
    if (statuses.some((s) => s.blocked) || Date.now() > until || signal.aborted) return false;
    await sleep(250);
  }
}

/**
 * The feed's batches at `intervalMs` apart until the deadline or the signal. `onEnqueued` runs
 * when the producer asks for the next batch, i.e. once the previous one is safely in Redis.
 */
function paced(
  batches: Batches,
  pace: { deadline: number; signal: AbortSignal; intervalMs: number },
  onEnqueued: (batch: Batch) => void,
): Batches {
  return async function* (highWatermark) {
    let next = performance.now();
    for await (const batch of batches(highWatermark)) {
      if (pace.signal.aborted || Date.now() >= pace.deadline) return;
      yield batch;
      onEnqueued(batch);
      next += pace.intervalMs;
      const wait = Math.min(next - performance.now(), pace.deadline - Date.now());
      if (wait > 0) await sleep(wait, undefined, { signal: pace.signal }).catch(() => undefined);
    }
  };
}
