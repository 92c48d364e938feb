/**
 * The public API of pg-bulk-ingest: everything a user imports from 'pg-bulk-ingest'. The
 * installed-package test (test/package/installed-package.test.ts) imports every pinned name from
 * the packed tarball, so a name missing here fails there.
 */

// Errors: one closed set, each with a stable `code`.
export {
  BatchError,
  ERROR_CODES,
  type ErrorCode,
  type ErrorContext,
  InvariantError,
  PgBulkIngestError,
  RowError,
  SchemaChangeError,
  TableDefinitionError,
} from './errors.ts';
// The library: ingest() and its options.
export { ingest } from './ingest/ingest.ts';
export type { TableMigration } from './ingest/migrate/migration-plan.ts';
export {
  BadRows,
  type Batch,
  type Batches,
  type BlockingBackendsOptions,
  Delete,
  HighWatermark,
  type IngestLogger,
  type IngestOptions,
  type Json,
  type JsonInput,
  type Row,
  type Rows,
  SchemaChanges,
  Upsert,
  Visibility,
} from './ingest/options.ts';
export {
  type ColumnDefinition,
  defineTable,
  type IndexDefinition,
  type IngestTable,
  type TableDefinitionInput,
} from './ingest/table-definition.ts';
// The queue service: producing, working, operating.
export {
  type AdminOptions,
  type HistoryOptions,
  type ReplayOptions,
  type SkipOptions,
  StreamAdmin,
  type StreamStatus,
} from './queue/admin.ts';
export type { CommittedBatch, DrainResult } from './queue/apply-stream.ts';
// The batch format (docs/batch-format.md): its zod schema, types and the error it throws.
export {
  BATCH_FORMAT_VERSION,
  type BatchJob,
  type BatchJobInput,
  type BatchOptions,
  batchJobSchema,
  batchOptionsSchema,
  InvalidBatchError,
  type WireRow,
} from './queue/batch-contract.ts';
export type { LedgerEntry } from './queue/ledger.ts';
export {
  type EnqueueInput,
  type EnqueueResult,
  Producer,
  type ProducerIngestOptions,
} from './queue/producer.ts';
export type { ProducerOptions } from './queue/producer-options.ts';
export {
  BATCH_JOB,
  DEFAULT_DATABASE_URL,
  DEFAULT_PREFIX,
  DEFAULT_QUEUE_NAME,
  DEFAULT_REDIS_URL,
  type QueueNames,
} from './queue/queue-config.ts';
export type { RejectedRowRecord } from './queue/replay.ts';
export type { RewindOptions, RewindResult } from './queue/rewind.ts';
export type { StreamInfo } from './queue/stream-store.ts';
export { Worker, type WorkerEvents } from './queue/worker.ts';
export type { WorkerOptions } from './queue/worker-options.ts';
