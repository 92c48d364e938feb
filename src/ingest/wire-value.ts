/**
 * A JavaScript value in the queue's wire format (docs/batch-format.md). It lives in the core, not
 * the queue, because the core needs it too: a row `ingest()` quarantines is stored in
 * `bulk_ingest.rejected_rows` as its wire values, so that a row ends up the same whichever way it
 * came (ingest(), Producer, gateway) and can be replayed through the queue as it is. The queue
 * re-exports it from batch-contract.ts.
 */

import { isoString } from './copy-encoding.ts';

/**
 * A JavaScript value as it travels: Buffers as base64, Dates as ISO 8601 (as ingest() writes
 * them, any year), bigints as strings. Not for json/jsonb values, which travel as they are.
 */
export function toWireValue(value: unknown): unknown {
  if (value === undefined || value === null) return null;
  if (value instanceof Uint8Array)
    return Buffer.from(value.buffer, value.byteOffset, value.byteLength).toString('base64');
  if (value instanceof Date) return Number.isNaN(value.getTime()) ? 'Invalid Date' : isoString(value);
  if (typeof value === 'bigint') return value.toString();
  if (typeof value === 'number' && !Number.isFinite(value)) return String(value);
  if (Array.isArray(value)) return value.map(toWireValue);
  return value;
}
