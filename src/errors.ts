/**
 * The closed set of errors this package throws. Each has a stable string `code` and carries
 * the context needed to find the problem: table, batch, row, column, stream, SQLSTATE.
 */

/**
 * Every error code, with what it means: the one list (docs/operations.md, "Error codes", is
 * checked against it by test/unit/error-codes.test.ts).
 */
export const ERROR_CODES = {
  INVALID_TABLE_DEFINITION:
    'a table definition cannot become a table (defineTable, or the tables of a batch)',
  INVALID_OPTIONS: 'an option of ingest(), a Producer, a Worker or a command is not valid',
  INVALID_ROW: 'a row cannot be written: wrong number of values, or a value its column cannot hold',
  TRANSACTION_IN_PROGRESS: 'ingest() was given a connection that is inside a transaction',
  INVALID_COMMENT: "the first table's comment is not the JSON this library (or the Python one) writes",
  INVALID_JSON_VALUE:
    'a high watermark or metadata value JSON (or jsonb) cannot hold: undefined, NaN, a function, a NUL, nested too deep, ...',
  BATCH_FAILED:
    'PostgreSQL refused a batch; it was rolled back (`retryable` says whether trying again may help)',
  SCHEMA_CHANGE_REFUSED: 'the table differs from the definition in a way schemaChanges does not allow',
  INVALID_BATCH_JOB: 'a batch in the wire format is malformed: the message names the batch, row and column',
  BACKPRESSURE: 'the stream has too much pending: workers are behind or stopped',
  BATCH_TOO_LARGE: 'a batch is larger than maxBatchBytes: split it',
  BATCH_ID_CONFLICT: 'a batchId was enqueued again with other content (an idempotency key names one batch)',
  PART_EXPIRED: "a part of a batch's rows expired in Redis before the batch was enqueued: enqueue it again",
  BATCH_MISSING: 'a pending batch (its header or a part) is gone from Redis: it cannot be applied',
  NOTHING_TO_SKIP: '`skip` found no pending batch, or not the one named',
  STREAM_BUSY: '`forget` or `rewind` was asked for a stream with pending batches, or a blocked one',
  REWIND_REFUSED:
    '`rewind` cannot go back to that batch: not in the ledger (pruned?), skipped, or not committed',
  REDIS_UNAVAILABLE: 'Redis did not answer in time: enqueue again with the same batchId',
  STREAM_CONFLICT: "the stream's committed state belongs to another deployment (another Redis key prefix)",
  INVALID_CONFIG: 'a setting (flag or environment variable) is not valid',
  INTERNAL_INVARIANT: 'a condition the code relies on did not hold: a bug, never bad input',
} as const;

export type ErrorCode = keyof typeof ERROR_CODES;

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

/** A condition the code relies on did not hold (e.g. a table it just locked is gone): a bug. */
export class InvariantError extends PgBulkIngestError {
  constructor(message: string, context: ErrorContext = {}) {
    super('INTERNAL_INVARIANT', message, context);
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

  constructor(
    message: string,
    context: ErrorContext,
    options: { cause?: unknown; retryable: boolean },
    code: ErrorCode = 'BATCH_FAILED',
  ) {
    super(code, message, context, { cause: options.cause });
    this.retryable = options.retryable;
  }
}

/**
 * The live table differs from the batch's definition in a way `schemaChanges` forbids: any
 * difference under `SchemaChanges.FREEZE`, a primary key or an incompatible type under
 * `ADDITIVE`. The message lists the differences, live vs definition. Never retryable: the same
 * batch meets the same table, so the queue parks it until someone changes one or the other.
 */
export class SchemaChangeError extends BatchError {
  /** One line per difference, e.g. `column "b": integer in the table, bigint in the definition`. */
  readonly differences: readonly string[];

  constructor(message: string, context: ErrorContext, differences: readonly string[]) {
    super(message, context, { retryable: false }, 'SCHEMA_CHANGE_REFUSED');
    this.differences = differences;
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
