/**
 * The queue end to end with 2 worker processes: a Producer enqueues the bench rows (batches of
 * BENCH_BATCH) into Redis; worker processes (`main.ts worker`, WORKER_CONCURRENCY=2) apply them.
 * Timed from the first enqueue until the stream's committed seq is the number of batches.
 * Peak RSS is the largest worker's VmHWM; Node CPU is the producer's plus the workers'.
 */
import { throughputMethod } from './method-queue-shared.ts';

export default throughputMethod('queue-2-workers', 'queue, 2 workers (Producer → Redis → Worker)', 2, [
  { maxRssMb: 200 },
]);
