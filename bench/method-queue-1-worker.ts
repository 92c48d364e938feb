/**
 * The queue end to end with 1 worker process: a Producer enqueues the bench rows (batches of
 * BENCH_BATCH) into Redis; worker processes (`main.ts worker`, WORKER_CONCURRENCY=2) apply them.
 * Timed from the first enqueue until the stream's committed seq is the number of batches.
 * Peak RSS is the largest worker's VmHWM; Node CPU is the producer's plus the workers'.
 */
import { throughputMethod } from './method-queue-shared.ts';

export default throughputMethod('queue-1-worker', 'queue, 1 worker (Producer → Redis → Worker)', 1, [
  { of: 'psql-copy', atLeast: 0.5 },
  { maxRssMb: 200 },
]);
