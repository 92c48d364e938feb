/** The public API of pg-bulk-ingest. */
export {
  BatchError,
  type ErrorCode,
  type ErrorContext,
  PgBulkIngestError,
  RowError,
  TableDefinitionError,
} from './errors.ts';
export { ingest } from './ingest/ingest.ts';
export {
  type Batch,
  type Batches,
  type BlockingBackendsOptions,
  Delete,
  HighWatermark,
  type IngestOptions,
  type Json,
  type JsonInput,
  type Row,
  type Rows,
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
