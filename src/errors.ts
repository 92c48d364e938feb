/**
 * The closed set of errors this package throws. Each has a stable string `code` and carries
 * the context needed to find the problem: table, batch, row, column, stream, SQLSTATE.
 */

export type ErrorCode =
  | 'INVALID_TABLE_DEFINITION'
  | 'INVALID_OPTIONS'
  | 'INVALID_ROW'
  | 'TRANSACTION_IN_PROGRESS'
  | 'INVALID_COMMENT'
  | 'INVALID_JSON_VALUE'
  | 'BATCH_FAILED'
  | 'INVALID_BATCH_JOB'
  | 'BACKPRESSURE'
  | 'BATCH_TOO_LARGE'
  | 'REDIS_UNAVAILABLE'
  | 'STREAM_CONFLICT'
  | 'INVALID_CONFIG';

export interface ErrorContext {
  /** `schema.name` of the stream (queue service). */
  readonly stream?: string;
  /** Sequence number of the batch in its stream (queue service). */
  readonly seq?: number;
  /** `"schema"."table"` the problem is in. */
  readonly table?: string;
  /** 1-based position of the batch within one `ingest()` call. */
  readonly batch?: number;
  /** 1-based position of the row: in the batch, or within its table's rows when `rowScope` says so. */
  readonly row?: number;
  readonly column?: string;
  /** PostgreSQL SQLSTATE when the database refused the batch. */
  readonly sqlState?: string;
  /** A dotted path into a definition or job, e.g. `columns[2].type`. */
  readonly path?: string;
}

export class PgBulkIngestError extends Error {
  readonly code: ErrorCode;
  readonly context: ErrorContext;

  constructor(code: ErrorCode, message: string, context: ErrorContext = {}, options?: { cause?: unknown }) {
    super(message, options);
    this.name = new.target.name;
    this.code = code;
    this.context = context;
  }
}

/** `defineTable()` was given something that cannot become a table. */
export class TableDefinitionError extends PgBulkIngestError {
  constructor(message: string, context: ErrorContext) {
    super('INVALID_TABLE_DEFINITION', message, context);
  }
}

/** A row cannot be written: wrong number of values, or a value its column cannot hold. */
export class RowError extends PgBulkIngestError {
  constructor(message: string, context: ErrorContext, options?: { cause?: unknown }) {
    super('INVALID_ROW', message, context, options);
  }
}

/** PostgreSQL refused a batch; it was rolled back. `retryable` sorts transient from bad data. */
export class BatchError extends PgBulkIngestError {
  readonly retryable: boolean;

  constructor(message: string, context: ErrorContext, options: { cause?: unknown; retryable: boolean }) {
    super('BATCH_FAILED', message, context, { cause: options.cause });
    this.retryable = options.retryable;
  }
}

/**
 * SQLSTATEs worth retrying: the same batch may well succeed later. Classes 22 (data exception)
 * and 23 (integrity constraint violation) never are: the batch itself is wrong.
 */
export function isRetryableSqlState(sqlState: string | undefined): boolean {
  if (sqlState === undefined) return true; // no SQLSTATE: the connection itself failed
  if (sqlState === '40001' || sqlState === '40P01') return true; // serialization failure, deadlock
  if (sqlState === '55P03' || sqlState === '57014') return true; // lock not available, query canceled
  const errorClass = sqlState.slice(0, 2);
  // 08 connection exception, 53 insufficient resources, 57 operator intervention (shutdown), 58 system error
  return errorClass === '08' || errorClass === '53' || errorClass === '57' || errorClass === '58';
}

/** The fields of a node-postgres DatabaseError this package reads. */
export interface DatabaseErrorLike {
  readonly message: string;
  readonly code: string;
  readonly where?: string;
  readonly column?: string;
  readonly table?: string;
  readonly schema?: string;
}

/** The error as a PostgreSQL error (it has a SQLSTATE and a severity), or undefined if it is not one. */
export function asDatabaseError(error: unknown): DatabaseErrorLike | undefined {
  if (!(error instanceof Error)) return undefined;
  const e = error as Error & { code?: unknown; severity?: unknown };
  return typeof e.code === 'string' && typeof e.severity === 'string'
    ? (e as unknown as DatabaseErrorLike)
    : undefined;
}
