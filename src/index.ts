/** The public API of pg-bulk-ingest. */
export {
  BatchError,
  type ErrorCode,
  type ErrorContext,
  PgBulkIngestError,
  RowError,
  SchemaChangeError,
  TableDefinitionError,
} from './errors.ts';
export { ingest } from './ingest/ingest.ts';
export type { TableMigration } from './ingest/migrate/migration-plan.ts';
export {
  type Batch,
  type Batches,
  type BlockingBackendsOptions,
  Delete,
  HighWatermark,
  type IngestOptions,
  type Json,
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
