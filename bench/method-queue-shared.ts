/**
 * Shared by the queue methods (not a method itself): a Producer with its own queue name and key
 * prefix, worker child processes (`src/ops/worker-processes.ts`), their peak RSS and CPU from
 * /proc, and the clean-up (SIGTERM, the run's Redis keys, its stream_state row).
 */
import { readFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import { Queue } from 'bullmq';
import { Redis } from 'ioredis';
import { HighWatermark, Upsert } from '../src/index.ts';
import { WorkerProcess } from '../src/ops/worker-processes.ts';
import { Producer } from '../src/queue/producer.ts';
import { bullQueues } from '../src/queue/queue-config.ts';
import { STATE_SCHEMA } from '../src/queue/stream-state.ts';
import { deleteKeysMatching } from '../src/queue/stream-store.ts';
import { createEmptyTable, withClient } from './db.ts';
import { benchTable } from './generate-rows.ts';
import { benchBatches } from './ingest-batches.ts';
import type { MethodContext, NodeMethod, RunReport } from './method.ts';
import { OUT, REPO } from './paths.ts';

const REDIS_URL = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';

export interface QueueRig {
  readonly producer: Producer;
  readonly stream: string;
  /**
   * Stream `i` of a run with several streams: `<stream>/<i>`. The clean-up removes the state of
   * every stream so named.
   */
  streamNo(i: number): string;
  /** The workers' /metrics texts (only when started with `metrics: true`). */
  scrapeMetrics(): Promise<string[]>;
  /** Throws if a worker exited, or the stream (default: `stream`) is blocked (parked batch). */
  check(stream?: string): Promise<void>;
  /** Sum of the workers' user + system CPU so far, ms. */
  workersCpuMs(): number;
  /** Reads the workers' VmHWM, stops them, removes the run's Redis keys and stream state. */
  stop(): Promise<{ peakRssKb: number }>;
}

/** Peak RSS (VmHWM, kB) of a live process. */
function vmHwmKb(pid: number): number {
  const m = /VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) : 0;
}

/** utime + stime of a live process, ms (clock ticks of 10 ms, the Linux default). */
function cpuMsOf(pid: number): number {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return (Number(fields[11]) + Number(fields[12])) * 10;
  } catch {
    return 0;
  }
}

/** A port free right now (the worker binds it a moment later; on a bench machine that is safe enough). */
function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      server.close(() => (typeof address === 'object' && address ? resolve(address.port) : reject()));
    });
  });
}

export interface QueueRigOptions {
  /** Give each worker a known metrics port on 127.0.0.1, for `scrapeMetrics`. @default false */
  readonly metrics?: boolean;
}

export async function startQueue(
  ctx: MethodContext,
  id: string,
  workerCount: number,
  concurrency: number,
  options: QueueRigOptions = {},
): Promise<QueueRig> {
  const name = `bench-${id}-${process.pid}-${Date.now()}`;
  const queueName = name;
  const prefix = name;
  const stream = name;
  const workers: WorkerProcess[] = [];
  const metricsPorts: number[] = [];
  for (let i = 0; i < workerCount; i++) {
    // Without `metrics`, 0: each worker picks a free port nobody reads.
    const metricsPort = options.metrics ? await freePort() : 0;
    if (options.metrics) metricsPorts.push(metricsPort);
    // Started as the demo and the tests start them (the Dockerfile's Node flags, the loader when
    // running from sources), plus BENCH_WORKER_NODE_FLAGS (default: BENCH_NODE_FLAGS) and profiling.
    // No --cpu-prof-name: the tsx loader thread writes a profile too, and would overwrite the main
    // thread's under the same name. The main thread's is the large one.
    const extra = process.env.BENCH_WORKER_NODE_FLAGS ?? process.env.BENCH_NODE_FLAGS ?? '';
    const flags = extra.split(' ').filter(Boolean);
    if (process.env.BENCH_CPU_PROF)
      flags.push('--cpu-prof', `--cpu-prof-dir=${OUT}/profiles/${name}-worker-${i}`);
    workers.push(
      new WorkerProcess({
        nodeFlags: flags,
        cwd: REPO,
        env: {
          ...process.env,
          DATABASE_URL: ctx.databaseUrl,
          REDIS_URL,
          PGBI_QUEUE: queueName,
          PGBI_PREFIX: prefix,
          WORKER_CONCURRENCY: String(concurrency),
          METRICS_PORT: String(metricsPort),
          METRICS_HOST: '127.0.0.1',
          LOG_LEVEL: 'warn',
        },
        // Worker logs go to stderr: the child's stdout carries BENCH_RESULT.
        output: 'stderr',
      }),
    );
  }
  const exited = () => workers.find((w) => !w.alive);
  const killAll = () => {
    for (const w of workers) void w.kill();
  };
  // Started before timing: wait until every worker's BullMQ worker is listening on the kicks queue.
  const bull = bullQueues({ queueName, prefix });
  const redis = new Redis(REDIS_URL, { maxRetriesPerRequest: null });
  const queue = new Queue(bull.kicks, { connection: redis, prefix: bull.prefix });
  try {
    const deadline = Date.now() + 60_000;
    while ((await queue.getWorkersCount()) < workerCount) {
      if (exited()) throw new Error(`${id}: a worker exited before it started`);
      if (Date.now() > deadline) throw new Error(`${id}: workers not listening after 60 s`);
      await sleep(50);
    }
  } catch (error) {
    // Nothing else would stop them: they would outlive the bench.
    killAll();
    await queue.close().catch(() => undefined);
    redis.disconnect();
    throw error;
  }
  await queue.close();
  const producer = new Producer({
    redis: REDIS_URL,
    queueName,
    prefix,
    maxPendingBatches: 100_000,
    maxPendingBytes: 0,
  });
  return {
    producer,
    stream,
    streamNo: (i) => `${stream}/${i}`,
    scrapeMetrics: () =>
      Promise.all(
        metricsPorts.map(async (port) => {
          const response = await fetch(`http://127.0.0.1:${port}/metrics`);
          if (!response.ok) throw new Error(`${id}: /metrics on port ${port} answered ${response.status}`);
          return response.text();
        }),
      ),
    async check(which = stream) {
      if (exited()) throw new Error(`${id}: a worker exited during the run`);
      const info = await producer.streamInfo(which);
      if (info.blocked)
        throw new Error(`${id}: stream ${which} blocked at seq ${info.blocked.seq}: ${info.blocked.reason}`);
    },
    workersCpuMs: () => workers.reduce((sum, w) => sum + (w.pid ? cpuMsOf(w.pid) : 0), 0),
    async stop() {
      const peakRssKb = Math.max(...workers.map((w) => (w.pid && w.alive ? vmHwmKb(w.pid) : 0)));
      await Promise.all(workers.map((w) => w.stop(30_000)));
      await producer.close();
      // The stream keys (`<prefix>:...`) and BullMQ's (`{<prefix>}:<queue>...`), see queue-keys.ts.
      for (const pattern of [`${prefix}:*`, `${bull.prefix}:*`]) await deleteKeysMatching(redis, pattern);
      redis.disconnect();
      await withClient(ctx.databaseUrl, (c) =>
        c
          .query(
            `DELETE FROM ${STATE_SCHEMA}.stream_state WHERE stream = $1 OR starts_with(stream, $1 || '/')`,
            [stream],
          )
          .catch(() => undefined),
      );
      return { peakRssKb };
    },
  };
}

/** Waits until the stream's (default: the rig's) committed seq reaches `seq`, polling Redis every `everyMs`. */
export async function waitCommitted(
  rig: QueueRig,
  seq: number,
  everyMs: number,
  stream = rig.stream,
): Promise<void> {
  for (let polls = 0; ; polls++) {
    const info = await rig.producer.streamInfo(stream);
    if (info.committedSeq >= seq) return;
    if (polls % 200 === 0) await rig.check(stream);
    await sleep(everyMs);
  }
}

/** Bulk throughput: every batch enqueued at once, timed until the last one is committed. */
export async function runThroughput(
  ctx: MethodContext,
  id: string,
  workerCount: number,
  concurrency: number,
  enqueueAll: (rig: QueueRig) => Promise<number>,
): Promise<RunReport> {
  const rig = await startQueue(ctx, id, workerCount, concurrency);
  try {
    const cpu0 = process.cpuUsage();
    const workersCpu0 = rig.workersCpuMs();
    const start = performance.now();
    const batches = await enqueueAll(rig);
    await waitCommitted(rig, batches, 5);
    const ms = performance.now() - start;
    const cpu = process.cpuUsage(cpu0);
    const producerCpuMs = (cpu.user + cpu.system) / 1000;
    const workersCpuMs = rig.workersCpuMs() - workersCpu0;
    const { peakRssKb } = await rig.stop();
    // Per million rows, so the two sides can be compared with ingest()'s Node CPU.
    const perMillion = (cpuMs: number) => Math.round((cpuMs / ctx.rows) * 1e6) / 1000;
    return {
      rows: ctx.rows,
      ms,
      cpuMs: producerCpuMs + workersCpuMs,
      maxRssKb: peakRssKb,
      metrics: { producerCpuSecPerM: perMillion(producerCpuMs), workersCpuSecPerM: perMillion(workersCpuMs) },
    };
  } catch (error) {
    await rig.stop().catch(() => undefined);
    throw error;
  }
}

/**
 * A bulk throughput method: the bench rows enqueued by `Producer.ingest()` (Upsert.OFF, one job
 * per batch) and applied by `workers` worker processes (WORKER_CONCURRENCY=2).
 */
export function throughputMethod(
  id: string,
  label: string,
  workers: number,
  targets: NodeMethod['targets'],
): NodeMethod {
  return {
    id,
    label,
    kind: 'node',
    targets,
    setup: createEmptyTable,
    run: (ctx) =>
      runThroughput(ctx, id, workers, 2, async (rig) => {
        const table = benchTable(ctx.schema);
        const results = await rig.producer.ingest([table], benchBatches(ctx, table), {
          upsert: Upsert.OFF,
          stream: rig.stream,
          highWatermark: HighWatermark.EARLIEST,
        });
        return results.length;
      }),
  };
}
