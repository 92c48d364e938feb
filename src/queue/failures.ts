/**
 * Sorting failures: transient ones are retried until they pass; a batch that cannot be applied
 * (bad data, constraint violation, a malformed job) is a poison batch and gets parked.
 */
import { asDatabaseError, BatchError, isRetryableSqlState, PgBulkIngestError } from '../errors.ts';

const UNRECOVERABLE_CODES = new Set([
  'INVALID_ROW',
  'INVALID_TABLE_DEFINITION',
  'INVALID_BATCH_JOB',
  'INVALID_OPTIONS',
  'INVALID_COMMENT',
  'BATCH_TOO_LARGE',
  'STREAM_CONFLICT',
]);

/** True when retrying the same batch cannot help without someone changing something. */
export function isPoison(error: unknown): boolean {
  if (error instanceof BatchError) return !error.retryable;
  if (error instanceof PgBulkIngestError) return UNRECOVERABLE_CODES.has(error.code);
  const db = asDatabaseError(error);
  if (db) return !isRetryableSqlState(db.code);
  return false; // a lost connection, a timeout, Redis unavailable: transient
}

/** A poison batch whose data will never change: no point retrying it at all. */
export function isMalformed(error: unknown): boolean {
  return (
    error instanceof PgBulkIngestError &&
    ['INVALID_BATCH_JOB', 'INVALID_TABLE_DEFINITION'].includes(error.code)
  );
}

export function describeError(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
