/**
 * The queue end to end with 1 worker process(es): a Producer enqueues the bench rows (batches of
 * BENCH_BATCH) into Redis; worker processes (`main.ts worker`, WORKER_CONCURRENCY=2) apply them.
 * Timed from the first enqueue until the stream's committed seq is the number of batches.
 * Peak RSS is the largest worker's VmHWM; Node CPU is the producer's plus the workers'.
 */
import { HighWatermark, Upsert } from '../src/index.ts';
import { createEmptyTable } from './db.ts';
import { benchTable } from './generate-rows.ts';
import { benchBatches } from './ingest-batches.ts';
import type { NodeMethod } from './method.ts';
import { runThroughput } from './method-queue-shared.ts';

const method: NodeMethod = {
  id: 'queue-1-worker',
  label: 'queue, 1 worker (Producer → Redis → Worker)',
  kind: 'node',
  targets: [{ of: 'psql-copy', atLeast: 0.5 }, { maxRssMb: 200 }],
  setup: createEmptyTable,
  run: (ctx) =>
    runThroughput(ctx, 'queue-1-worker', 1, 2, async (rig) => {
      const table = benchTable(ctx.schema);
      const results = await rig.producer.ingest([table], benchBatches(ctx, table), {
        upsert: Upsert.OFF,
        stream: rig.stream,
        highWatermark: HighWatermark.EARLIEST,
      });
      return results.length;
    }),
};
export default method;
