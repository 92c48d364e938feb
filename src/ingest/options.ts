import type pg from 'pg';
import type { IngestTable } from './table-definition.ts';

/**
 * A JSON value as this package hands it out: a high watermark read back, batch metadata. An
 * integer beyond 2^53 is a `bigint`, so no digit is lost (exact-json.ts).
 */
export type Json =
  | string
  | number
  | bigint
  | boolean
  | null
  | readonly Json[]
  | { readonly [key: string]: Json };

/**
 * What a high watermark or metadata may be given as: JSON, and `Date`s (stored as their ISO 8601
 * strings). NaN, Infinity, undefined, `\u0000` in a string, lone surrogates, class instances other
 * than Date, and values nested deeper than 100 levels are refused (storable-json.ts).
 */
export type JsonInput = Json | Date | readonly JsonInput[] | { readonly [key: string]: JsonInput };

/** Which high watermark `batches` is called with. The strings match the Python library's. */
export const HighWatermark = {
  /** The one stored in the first table's comment, or `null` if there is none. */
  LATEST: '__LATEST__',
  /** `null`: start from the beginning. */
  EARLIEST: '__EARLIEST__',
} as const;

export const Visibility = {
  /** Each batch is one transaction: all of it becomes visible at its commit, or none. */
  AFTER_EACH_BATCH: '__AFTER_EACH_BATCH__',
} as const;
export type Visibility = (typeof Visibility)[keyof typeof Visibility];

export const Upsert = {
  /** Plain insert: a duplicate key fails the batch. */
  OFF: '__OFF__',
  /** On a table with a primary key, rows replace the ones with the same key. */
  IF_PRIMARY_KEY: '__IF_PRIMARY_KEY__',
} as const;
export type Upsert = (typeof Upsert)[keyof typeof Upsert];

export const Delete = {
  OFF: '__OFF__',
  /** The first batch goes into a new empty table that replaces the live one at its commit. */
  BEFORE_FIRST_BATCH: '__BEFORE_FIRST_BATCH__',
} as const;
export type Delete = (typeof Delete)[keyof typeof Delete];

/** What a batch may do to a live table that differs from its definition (docs/under-the-hood.md). */
export const SchemaChanges = {
  /** The definition is the truth: the table is altered in place where PostgreSQL allows, else rebuilt. */
  APPLY: '__APPLY__',
  /**
   * The table only grows: new columns (always nullable, at the end) and indexes are added, types
   * widened, NOT NULL dropped where a definition lacks the column or allows NULL. Nothing is
   * dropped or narrowed: a batch with an older definition is written into the live shape, NULL
   * in the columns it does not know (kept as they are when an upsert updates a row). For
   * producers deployed one by one, sending old and new definitions for a while.
   */
  ADDITIVE: '__ADDITIVE__',
  /** Any difference fails the batch (`SchemaChangeError`, not retryable) with a diff of table vs definition. */
  FREEZE: '__FREEZE__',
} as const;
export type SchemaChanges = (typeof SchemaChanges)[keyof typeof SchemaChanges];

/** What a batch does with rows PostgreSQL refuses (docs/under-the-hood.md, "Bad rows"). */
export const BadRows = {
  /** Any refused row fails the whole batch: nothing of it is written. */
  FAIL: '__FAIL__',
  /**
   * A row refused for its data (SQLSTATE class 22) or a constraint (class 23), or whose value
   * cannot be encoded for its column, is written to `bulk_ingest.rejected_rows` in the batch's
   * transaction instead, and the other rows commit. More than `maxBadRows` of them fail the batch.
   */
  QUARANTINE: '__QUARANTINE__',
} as const;
export type BadRows = (typeof BadRows)[keyof typeof BadRows];

/** A row: the table it belongs to and its values in column order. */
export type Row = readonly [table: IngestTable, values: readonly unknown[]];
export type Rows = Iterable<Row> | AsyncIterable<Row>;
/** `[highWatermark, batchMetadata, rows]`; the watermark may be a function called after the rows are read. */
export type Batch = readonly [
  highWatermark: JsonInput | (() => JsonInput),
  metadata: JsonInput | unknown,
  rows: Rows,
];
export type Batches = (highWatermark: Json | null) => Iterable<Batch> | AsyncIterable<Batch>;

/** What to do with backends that block the brief ACCESS EXCLUSIVE lock a table swap needs. */
export interface BlockingBackendsOptions {
  /** Cancel the blocking backends' queries after this long. @default 300000 (5 minutes, as pg-force-execute) */
  readonly cancelAfterMs?: number;
  /** Terminate the blocking backends after this long, if cancelling did not free the lock. @default 310000 */
  readonly terminateAfterMs?: number;
  /** How often to look for blocking backends once the delay has passed. @default 1000 */
  readonly intervalMs?: number;
}

/**
 * Where `ingest()` logs its steps (docs/under-the-hood.md, "Logging"): a pino logger fits, or
 * anything with these two methods. `details` is an object of fields, `message` says what happened.
 */
export interface IngestLogger {
  info(details: object, message: string): void;
  warn(details: object, message: string): void;
}

export interface IngestOptions {
  /** @default HighWatermark.LATEST */
  readonly highWatermark?: Json;
  /** @default Visibility.AFTER_EACH_BATCH */
  readonly visibility?: Visibility;
  /** @default Upsert.IF_PRIMARY_KEY */
  readonly upsert?: Upsert;
  /** @default Delete.OFF */
  readonly delete?: Delete;
  /** Runs inside each batch's transaction just before commit, once per table of the batch. @default no-op */
  readonly onBeforeVisible?: (
    client: pg.ClientBase,
    table: IngestTable,
    batchMetadata: unknown,
  ) => Promise<void> | void;
  /** Most rows held in memory per table while another table's rows stream into COPY. @default 10000 */
  readonly maxRowsPerTableBuffer?: number;
  /** What a batch may do to a live table that differs from its definition. @default SchemaChanges.APPLY */
  readonly schemaChanges?: SchemaChanges;
  /** What to do with rows PostgreSQL refuses: fail the batch, or quarantine them. @default BadRows.FAIL */
  readonly badRows?: BadRows;
  /** With `BadRows.QUARANTINE`: more refused rows than this in one batch fail the batch. @default 1000 */
  readonly maxBadRows?: number;
  /** Cancel, then terminate, backends that block a table swap (or an in-place ALTER, after retrying that long); `false` waits for them forever. @default {} (the delays above) */
  readonly blockingBackends?: BlockingBackendsOptions | false;
  /** Logs each step: the start, each batch committed, each table migrated and why, rows quarantined, backends removed. @default no logging */
  readonly logger?: IngestLogger;
}
