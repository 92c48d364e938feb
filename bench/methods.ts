/**
 * The methods `npm run bench` measures, in the order they are printed. Each module's default
 * export is a BenchMethod (method.ts); a child process imports only its own method's module.
 * Names are of files in bench/ (run.ts loads them compiled or as sources, see paths.ts).
 * Add a method (e.g. the queue end to end with 1 and 2 workers) by adding its module here.
 */
export const METHOD_MODULES: readonly string[] = [
  'method-psql-copy.ts',
  'method-ingest-insert.ts',
  'method-copy-upsert.ts',
  'method-ingest-upsert.ts',
  'method-naive-insert.ts',
  'method-queue-1-worker.ts',
  'method-queue-2-workers.ts',
  'method-queue-latency.ts',
  'method-queue-small-batches.ts',
];
