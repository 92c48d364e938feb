/**
 * The queue with many small batches, as most producer services send them: BENCH_SMALL_BATCHES
 * (default 2,000) batches of 10 rows, enqueued by 8 concurrent producer loops sharing one
 * Producer, with Upsert.IF_PRIMARY_KEY, applied by 2 worker processes (WORKER_CONCURRENCY=2).
 * Two shapes, each with fresh workers: (a) every batch in one stream, (b) batches spread round
 * robin over 20 streams. Each is timed from the first enqueue until every stream's committed seq
 * is its last batch's.
 *
 * Order check: each stream owns a small key range and its batches overwrite keys of earlier ones,
 * so the final table depends on the order batches were applied in. The bench process applies the
 * batches itself, per stream in enqueue (seq) order, last row wins, and compares the result with
 * the table; a difference fails the run.
 *
 * Reports per shape: rows/s, batches/s, batches per transaction (from the workers'
 * `pgbi_batches_per_transaction` histogram; "n/a" on stderr when the workers have none) and Node
 * CPU per batch (producer + workers, µs).
 */

import type { IngestTable, Row } from '../src/index.ts';
import { Upsert } from '../src/index.ts';
import { createEmptyTable, tableOf, withClient } from './db.ts';
import { type BenchRow, benchTable } from './generate-rows.ts';
import type { MethodContext, NodeMethod, RunReport } from './method.ts';
import { type QueueRig, startQueue, waitCommitted } from './method-queue-shared.ts';

const BATCH_ROWS = 10;
const PRODUCERS = 8;
const WORKERS = 2;
const CONCURRENCY = 2;
const SHAPES = [
  { key: 'oneStream', label: 'one stream', streams: 1 },
  { key: 'twentyStreams', label: '20 streams', streams: 20 },
] as const;
const HISTOGRAM = 'pgbi_batches_per_transaction';

/** Batches per shape: BENCH_SMALL_BATCHES, default 2,000. */
function batchesPerShape(): number {
  const raw = process.env.BENCH_SMALL_BATCHES;
  const value = raw ? Number(raw.replaceAll('_', '')) : 2000;
  if (!Number.isInteger(value) || value < 1)
    throw new Error(`BENCH_SMALL_BATCHES must be a positive integer, got ${raw}`);
  return value;
}

/** Where batch `g` of a run with `streams` streams goes, and the keys it writes. */
class Layout {
  /** Keys per stream: a quarter of its rows, so each key is written about 4 times. */
  readonly keysPerStream: number;

  constructor(
    readonly batches: number,
    readonly streams: number,
    readonly seed: number,
  ) {
    const rowsPerStream = Math.ceil(batches / streams) * BATCH_ROWS;
    this.keysPerStream = Math.max(2 * BATCH_ROWS, Math.ceil(rowsPerStream / 4));
  }

  streamOf(g: number): number {
    return g % this.streams;
  }

  /**
   * The rows of batch `g`: 10 distinct consecutive keys (wrapping) of its stream's range, at a
   * pseudo-random start, so that batches overlap partly and unpredictably. `name` says which
   * write it is: the order check compares it.
   */
  rows(g: number): BenchRow[] {
    const start = mix(this.seed * 1_000_003 + g) % this.keysPerStream;
    const base = this.streamOf(g) * this.keysPerStream + 1;
    return Array.from({ length: BATCH_ROWS }, (_, j): BenchRow => {
      const id = base + ((start + j) % this.keysPerStream);
      return [
        id,
        new Date(Date.UTC(2024, 0, 1) + g * 1000 + j),
        `b${g}r${j}`,
        ((g * BATCH_ROWS + j) % 1_000_000) / 100,
        { id, kind: 'small', score: g, tags: ['small', `r${j}`], active: g % 2 === 0 },
      ];
    });
  }
}

/** A 32-bit integer hash (splitmix-like): deterministic pseudo-random starts. */
function mix(n: number): number {
  let x = Math.imul(n ^ (n >>> 16), 0x45d9f3b);
  x = Math.imul(x ^ (x >>> 16), 0x45d9f3b);
  return (x ^ (x >>> 16)) >>> 0;
}

function* tagged(table: IngestTable, rows: Iterable<BenchRow>): Generator<Row> {
  for (const values of rows) yield [table, values];
}

/**
 * Sum and count of a histogram over every label set, from Prometheus text; undefined if the
 * histogram is not there (a labelled histogram with no observation yet has only its TYPE line).
 */
function histogramTotals(text: string, name: string): { sum: number; count: number } | undefined {
  let sum = 0;
  let count = 0;
  let found = false;
  for (const line of text.split('\n')) {
    if (line === `# TYPE ${name} histogram`) found = true;
    const m = /^(\S+?)(?:\{[^}]*\})? (\S+)$/.exec(line);
    if (m?.[1] === `${name}_sum`) sum += Number(m[2]);
    else if (m?.[1] === `${name}_count`) count += Number(m[2]);
  }
  return found ? { sum, count } : undefined;
}

async function histogramOf(rig: QueueRig): Promise<{ sum: number; count: number } | undefined> {
  let sum = 0;
  let count = 0;
  for (const text of await rig.scrapeMetrics()) {
    const totals = histogramTotals(text, HISTOGRAM);
    if (!totals) return undefined;
    sum += totals.sum;
    count += totals.count;
  }
  return { sum, count };
}

/**
 * The table must hold, for each key, the row of the last batch (in seq order of its stream)
 * that wrote it. Throws on the first difference.
 */
async function checkOrder(
  ctx: MethodContext,
  layout: Layout,
  enqueued: readonly { stream: number; seq: number }[],
): Promise<void> {
  const byStream = Array.from({ length: layout.streams }, () => [] as { seq: number; g: number }[]);
  enqueued.forEach(({ stream, seq }, g) => {
    byStream[stream]?.push({ seq, g });
  });
  const expected = new Map<number, string>();
  for (const [s, list] of byStream.entries()) {
    list.sort((a, b) => a.seq - b.seq);
    list.forEach(({ seq }, i) => {
      if (seq !== i + 1)
        throw new Error(`queue-small-batches: stream ${s} has seq ${seq} at position ${i + 1}`);
    });
    for (const { g } of list) for (const [id, , name] of layout.rows(g)) expected.set(id, name);
  }
  const actual = await withClient(ctx.databaseUrl, (c) =>
    c.query<{ id: string; name: string }>(`SELECT id::text, name FROM ${tableOf(ctx)}`),
  );
  if (actual.rows.length !== expected.size)
    throw new Error(
      `queue-small-batches: ORDER CHECK FAILED: the table has ${actual.rows.length} rows, ${expected.size} expected`,
    );
  for (const { id, name } of actual.rows) {
    const want = expected.get(Number(id));
    if (want !== name)
      throw new Error(
        `queue-small-batches: ORDER CHECK FAILED: id ${id} holds ${name}, applying the batches in enqueue order gives ${want}`,
      );
  }
}

interface ShapeResult {
  readonly rows: number;
  readonly ms: number;
  readonly cpuMs: number;
  readonly peakRssKb: number;
  readonly metrics: Record<string, number>;
}

async function runShape(
  ctx: MethodContext,
  shape: (typeof SHAPES)[number],
  batches: number,
): Promise<ShapeResult> {
  const layout = new Layout(batches, shape.streams, ctx.seed);
  const table = benchTable(ctx.schema);
  // Rows generated before timing: the producer's CPU is the queue's, not the generator's.
  const rows = Array.from({ length: batches }, (_, g) => layout.rows(g));
  const rig = await startQueue(ctx, `queue-small-batches-${shape.streams}`, WORKERS, CONCURRENCY, {
    metrics: true,
  });
  try {
    const histogram0 = await histogramOf(rig);
    const enqueued: { stream: number; seq: number }[] = new Array(batches);
    let next = 0;
    const producerLoop = async () => {
      for (let g = next++; g < batches; g = next++) {
        const stream = layout.streamOf(g);
        const { seq } = await rig.producer.enqueue({
          tables: [table],
          highWatermark: g,
          rows: tagged(table, rows[g] as BenchRow[]),
          options: { upsert: Upsert.IF_PRIMARY_KEY },
          stream: rig.streamNo(stream),
        });
        enqueued[g] = { stream, seq };
      }
    };
    const cpu0 = process.cpuUsage();
    const workersCpu0 = rig.workersCpuMs();
    const start = performance.now();
    await Promise.all(Array.from({ length: PRODUCERS }, producerLoop));
    const enqueueMs = performance.now() - start;
    const lastSeq = new Map<number, number>();
    for (const { stream, seq } of enqueued) lastSeq.set(stream, Math.max(seq, lastSeq.get(stream) ?? 0));
    // Polled every 20 ms, not 1 ms: the polling is the producer process's CPU time too, and
    // would otherwise weigh on the CPU per batch (up to 20 ms more wall time is noise here).
    for (const [stream, seq] of lastSeq) await waitCommitted(rig, seq, 20, rig.streamNo(stream));
    const ms = performance.now() - start;
    const cpu = process.cpuUsage(cpu0);
    const producerCpuMs = (cpu.user + cpu.system) / 1000;
    const workersCpuMs = rig.workersCpuMs() - workersCpu0;
    const histogram1 = await histogramOf(rig);
    const { peakRssKb } = await rig.stop();
    await checkOrder(ctx, layout, enqueued);
    await withClient(ctx.databaseUrl, (c) => c.query(`TRUNCATE ${tableOf(ctx)}`));

    const k = shape.key;
    const metrics: Record<string, number> = {
      [`${k}RowsPerSec`]: Math.round((batches * BATCH_ROWS) / (ms / 1000)),
      [`${k}BatchesPerSec`]: Math.round(batches / (ms / 1000)),
      [`${k}EnqueueMs`]: Math.round(enqueueMs),
      [`${k}CpuUsPerBatch`]: Math.round(((producerCpuMs + workersCpuMs) / batches) * 1000),
      [`${k}ProducerCpuUsPerBatch`]: Math.round((producerCpuMs / batches) * 1000),
      [`${k}WorkersCpuUsPerBatch`]: Math.round((workersCpuMs / batches) * 1000),
    };
    const transactions = histogram0 && histogram1 ? histogram1.count - histogram0.count : 0;
    let perTx = 'n/a (the workers have no pgbi_batches_per_transaction histogram)';
    if (histogram0 && histogram1 && transactions > 0) {
      const value = (histogram1.sum - histogram0.sum) / transactions;
      metrics[`${k}BatchesPerTx`] = Math.round(value * 100) / 100;
      perTx = value.toFixed(2);
    }
    process.stderr.write(
      `queue-small-batches, ${shape.label}: ${batches} batches in ${(ms / 1000).toFixed(2)} s ` +
        `(all enqueued after ${(enqueueMs / 1000).toFixed(2)} s), ` +
        `${metrics[`${k}RowsPerSec`]} rows/s, ${metrics[`${k}BatchesPerSec`]} batches/s, ` +
        `batches per transaction ${perTx}, Node CPU ${(metrics[`${k}CpuUsPerBatch`] as number) / 1000} ms per batch ` +
        `(producer ${(metrics[`${k}ProducerCpuUsPerBatch`] as number) / 1000}, workers ${(metrics[`${k}WorkersCpuUsPerBatch`] as number) / 1000}); order check passed\n`,
    );
    return { rows: batches * BATCH_ROWS, ms, cpuMs: producerCpuMs + workersCpuMs, peakRssKb, metrics };
  } catch (error) {
    await rig.stop().catch(() => undefined);
    throw error;
  }
}

const method: NodeMethod = {
  id: 'queue-small-batches',
  label: `queue, ${BATCH_ROWS}-row batches, ${PRODUCERS} producers, ${WORKERS} workers (1 and 20 streams)`,
  kind: 'node',
  ownRows: true,
  maxRows: SHAPES.length * batchesPerShape() * BATCH_ROWS,
  targets: [
    { metric: 'oneStreamRowsPerSec', atLeast: 20_000, label: 'one stream', unit: 'rows/s' },
    { metric: 'twentyStreamsRowsPerSec', atLeast: 30_000, label: '20 streams', unit: 'rows/s' },
    { metric: 'oneStreamCpuUsPerBatch', below: 500, label: 'Node CPU per batch, one stream', unit: 'µs' },
    { metric: 'twentyStreamsCpuUsPerBatch', below: 500, label: 'Node CPU per batch, 20 streams', unit: 'µs' },
  ],
  setup: createEmptyTable,
  async run(ctx): Promise<RunReport> {
    const batches = batchesPerShape();
    const results: ShapeResult[] = [];
    for (const shape of SHAPES) results.push(await runShape(ctx, shape, batches));
    return {
      rows: results.reduce((n, r) => n + r.rows, 0),
      ms: results.reduce((n, r) => n + r.ms, 0),
      cpuMs: results.reduce((n, r) => n + r.cpuMs, 0),
      maxRssKb: Math.max(...results.map((r) => r.peakRssKb)),
      metrics: Object.assign({}, ...results.map((r) => r.metrics)),
    };
  },
};
export default method;
