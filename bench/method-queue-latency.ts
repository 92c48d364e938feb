/**
 * The queue's latency with small batches: 300 batches of 10 rows, enqueued one at a time on one
 * worker process (WORKER_CONCURRENCY=1); each waits until committed (the stream's committed seq,
 * polled every 1 ms) before the next. Reports enqueue-to-visible p50 and p99 in ms.
 */

import type { IngestTable, Row } from '../src/index.ts';
import { Upsert } from '../src/index.ts';
import { createEmptyTable } from './db.ts';
import { type BenchRow, benchTable, generateBatches } from './generate-rows.ts';
import type { NodeMethod } from './method.ts';
import { startQueue, waitCommitted } from './method-queue-shared.ts';

const BATCHES = 300;
const BATCH_ROWS = 10;

function* tagged(table: IngestTable, rows: Iterable<BenchRow>): Generator<Row> {
  for (const values of rows) yield [table, values];
}

function percentile(sorted: number[], p: number): number {
  return sorted[Math.max(0, Math.ceil(p * sorted.length) - 1)] as number;
}

const method: NodeMethod = {
  id: 'queue-latency',
  label: `queue latency, ${BATCH_ROWS}-row batches, 1 worker`,
  kind: 'node',
  maxRows: BATCHES * BATCH_ROWS,
  targets: [
    { metric: 'p50Ms', below: 15, label: 'enqueue-to-visible p50', unit: 'ms' },
    { metric: 'p99Ms', below: 60, label: 'enqueue-to-visible p99', unit: 'ms' },
    { maxRssMb: 200 },
  ],
  setup: createEmptyTable,
  async run(ctx) {
    const rig = await startQueue(ctx, 'queue-latency', 1, 1);
    try {
      const table = benchTable(ctx.schema);
      const latencies: number[] = [];
      const cpu0 = process.cpuUsage();
      const workersCpu0 = rig.workersCpuMs();
      const start = performance.now();
      for (const batch of generateBatches(ctx.seed, ctx.rows, BATCH_ROWS)) {
        const t = performance.now();
        const { seq } = await rig.producer.enqueue({
          tables: [table],
          highWatermark: batch.first + batch.count,
          rows: tagged(table, batch.rows()),
          options: { upsert: Upsert.OFF },
          stream: rig.stream,
        });
        await waitCommitted(rig, seq, 1);
        latencies.push(performance.now() - t);
      }
      const ms = performance.now() - start;
      const cpu = process.cpuUsage(cpu0);
      const cpuMs = (cpu.user + cpu.system) / 1000 + (rig.workersCpuMs() - workersCpu0);
      const { peakRssKb } = await rig.stop();
      latencies.sort((a, b) => a - b);
      const metrics = {
        p50Ms: percentile(latencies, 0.5),
        p99Ms: percentile(latencies, 0.99),
        maxMs: latencies[latencies.length - 1] as number,
        batches: latencies.length,
      };
      return { rows: ctx.rows, ms, cpuMs, maxRssKb: peakRssKb, metrics };
    } catch (error) {
      await rig.stop().catch(() => undefined);
      throw error;
    }
  },
};
export default method;
