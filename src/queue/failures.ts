/**
 * Sorting failures. An error is transient only when it is known to be: the connection or the
 * server went away, a serialization failure or deadlock, a lock or statement timeout, a shutdown,
 * two sessions creating the same schema or table at once, Redis not answering. Those are retried
 * until they pass (the stream shows the last one in `status`). Everything else, known or not
 * (bad data, a constraint violation, a malformed job, a bug, a stack overflow), is a poison
 * batch: retried a few times, then parked with its reason, so nothing loops forever unexplained.
 */
import { asDatabaseError, BatchError, isRetryableSqlState, PgBulkIngestError } from '../errors.ts';
import { isRedisTimeout } from './stream-store.ts';

/** Codes of this package's errors that a later attempt may get past without anyone acting. */
const TRANSIENT_CODES = new Set(['REDIS_UNAVAILABLE', 'BACKPRESSURE', 'PART_EXPIRED']);

/** Errors of node-postgres, ioredis and Node's sockets that mean "the connection is gone". */
const CONNECTION_ERROR_CODES = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'EPIPE',
  'ETIMEDOUT',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'EAI_AGAIN',
  'ENOTFOUND',
]);
const CONNECTION_MESSAGES = [
  /^Connection terminated/,
  /^Client has encountered a connection error/,
  /^Client was closed and is not queryable/,
  /^Connection is closed\.?$/, // ioredis
  /^Reached the max retries per request limit/, // ioredis
  /^timeout exceeded when trying to connect$/, // pg.Pool connectionTimeoutMillis
];

/** A concurrent CREATE of the same schema/table/type: a unique violation on a system catalog. */
function isConcurrentDdlRace(error: unknown): boolean {
  const db = asDatabaseError(error) as
    | (ReturnType<typeof asDatabaseError> & { constraint?: string })
    | undefined;
  if (!db) return false;
  if (db.code === '23505') return /^pg_/.test(db.constraint ?? '');
  return db.code === 'XX000' && /tuple concurrently (updated|deleted)/.test(db.message);
}

/** True when the same batch may well succeed on a later attempt. */
export function isTransient(error: unknown): boolean {
  if (error instanceof BatchError) return error.retryable || isTransient(error.cause);
  if (error instanceof PgBulkIngestError) return TRANSIENT_CODES.has(error.code);
  if (isConcurrentDdlRace(error) || isRedisTimeout(error)) return true;
  const db = asDatabaseError(error);
  if (db) return isRetryableSqlState(db.code);
  if (!(error instanceof Error)) return false;
  const code = (error as Error & { code?: unknown }).code;
  if (typeof code === 'string' && CONNECTION_ERROR_CODES.has(code)) return true;
  return CONNECTION_MESSAGES.some((pattern) => pattern.test(error.message));
}

/** True when retrying the same batch cannot help without someone changing something. */
export function isPoison(error: unknown): boolean {
  return !isTransient(error);
}

/** A poison batch whose data will never change: no point retrying it at all. */
export function isMalformed(error: unknown): boolean {
  return (
    error instanceof PgBulkIngestError &&
    ['INVALID_BATCH_JOB', 'INVALID_TABLE_DEFINITION', 'BATCH_ID_CONFLICT', 'BATCH_MISSING'].includes(
      error.code,
    )
  );
}

export function describeError(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
