/**
 * `rewind`: sets a stream's stored high watermark back to the one committed with batch N, as
 * the ledger (bulk_ingest.batches) recorded it, everywhere it is stored: the first table's
 * comment (the core's format, other keys kept), bulk_ingest.stream_state, and Redis's mirror.
 * A producer using HighWatermark.LATEST (or `ingest()` with it) then sends again from there.
 * The committed seq does not move: re-sent batches are new batches with new numbers. Rows
 * already in the tables stay: re-sending with an upsert is idempotent; plain inserts would
 * write the rows twice.
 */
import type pg from 'pg';
import { z } from 'zod';
import { PgBulkIngestError } from '../errors.ts';
import { stringifyJson } from '../ingest/exact-json.ts';
import {
  highWatermarkOf,
  parseComment,
  readTableComment,
  withHighWatermark,
  writeTableComment,
} from '../ingest/high-watermark.ts';
import type { Json } from '../ingest/options.ts';
import { integer, parseOptions } from '../ingest/parse-options.ts';
import { qualifiedName } from '../ingest/sql.ts';
import { committedState, setCommittedHighWatermark } from './committed-state.ts';
import { ledgerHistory } from './ledger.ts';
import { lockStreamAndTables } from './stream-locks.ts';
import { ensureStateTables, inTransaction, STATE_SCHEMA } from './stream-state.ts';
import type { StreamInfo, StreamStore } from './stream-store.ts';

/** Options of `admin.rewind()`. */
export interface RewindOptions {
  /** The batch whose committed high watermark the stream goes back to (its row in the ledger). */
  readonly toSeq: number;
  /**
   * Rewind although batches are pending or the stream is blocked. Those batches then commit
   * after the rewind, and the last one's high watermark is the stream's again. @default false
   */
  readonly force?: boolean;
}

export const rewindOptionsSchema = z.object({ toSeq: integer(1), force: z.boolean().default(false) });

/** What `rewind` did: also the row it records in bulk_ingest.rewinds (recordRewind). */
export interface RewindResult {
  readonly stream: string;
  readonly toSeq: number;
  /** The stream's high watermark now: the one committed with batch `toSeq`. */
  readonly highWatermark: Json | null;
  /** What the table comment held before. */
  readonly previousHighWatermark: Json | null;
  /** The stream's committed seq, unchanged: the next batch is `committedSeq + 1`. */
  readonly committedSeq: number;
  readonly forced: boolean;
  /** Why it had to be forced, or null. */
  readonly note: string | null;
}

export async function rewindStream(
  pool: pg.Pool,
  store: StreamStore,
  stream: string,
  options: RewindOptions,
): Promise<RewindResult> {
  const { toSeq, force } = parseOptions(rewindOptionsSchema, options, { context: { stream } });
  await ensureStateTables(pool);
  const result = await inTransaction(pool, async (client) => {
    const [entry] = await ledgerHistory(client, stream, 1, toSeq);
    if (entry === undefined)
      throw refused(
        stream,
        toSeq,
        'it is not in the ledger bulk_ingest.batches (never committed, or pruned)',
      );
    if (entry.outcome !== 'committed' || entry.table === null)
      throw refused(stream, toSeq, 'it was skipped, so its high watermark was never committed');
    const table = entry.table;
    // The same locks as a worker applying a batch of the stream: no commit runs meanwhile.
    await lockStreamAndTables(client, stream, [table]);
    const state = await committedState(client, stream);
    if (toSeq > state.seq)
      throw refused(stream, toSeq, `the stream has committed only up to batch ${state.seq}`);
    const busy = busyReason(await store.info(stream));
    if (busy && !force)
      throw new PgBulkIngestError(
        'STREAM_BUSY',
        `Stream ${stream} ${busy}: rewinding now would be undone by those batches when they commit. Wait until they are committed (or skip them), or rewind with force (--force).`,
        { stream, seq: toSeq },
      );
    const comment = await readTableComment(client, table.schema, table.name);
    if (comment === null && !(await tableExists(client, table.schema, table.name)))
      throw refused(stream, toSeq, `its table ${qualifiedName(table.schema, table.name)} does not exist`);
    const parsed = parseComment(comment, table.schema, table.name);
    await writeTableComment(client, table.schema, table.name, withHighWatermark(parsed, entry.highWatermark));
    const result: RewindResult = {
      stream,
      toSeq,
      highWatermark: entry.highWatermark,
      previousHighWatermark: highWatermarkOf(parsed),
      committedSeq: state.seq,
      forced: busy !== null,
      note: busy,
    };
    await recordRewind(client, result);
    return result;
  });
  // After the commit. Should this fail, PostgreSQL is rewound and Redis is not: run it again.
  await store.setCommittedHighWatermark(stream, result.highWatermark);
  return result;
}

/**
 * -- record-rewind
 * In the rewind's transaction, with the stream locked: the stream's stored high watermark goes
 * back (its committed seq stays: new batches still get new numbers), and the rewind is recorded.
 */
async function recordRewind(client: pg.ClientBase, r: RewindResult): Promise<void> {
  await setCommittedHighWatermark(client, r.stream, r.highWatermark);
  await client.query(
    `INSERT INTO ${STATE_SCHEMA}.rewinds
       (stream, to_seq, high_watermark, previous_high_watermark, committed_seq, forced, note)
     VALUES ($1, $2, $3, $4, $5, $6, $7)`,
    [
      r.stream,
      r.toSeq,
      stringifyJson(r.highWatermark),
      stringifyJson(r.previousHighWatermark),
      r.committedSeq,
      r.forced,
      r.note,
    ],
  );
}

/** Why the stream is not idle (pending batches, a block), or null. */
function busyReason(info: StreamInfo): string | null {
  const reasons: string[] = [];
  if (info.pendingBatches > 0)
    reasons.push(
      `has ${info.pendingBatches} pending batch${info.pendingBatches === 1 ? '' : 'es'} (enqueued up to ${info.enqueuedSeq})`,
    );
  if (info.blocked) reasons.push(`is blocked at batch ${info.blocked.seq} (${info.blocked.reason})`);
  return reasons.length === 0 ? null : reasons.join(' and ');
}

function refused(stream: string, seq: number, why: string): PgBulkIngestError {
  return new PgBulkIngestError('REWIND_REFUSED', `Stream ${stream}: cannot rewind to batch ${seq}: ${why}`, {
    stream,
    seq,
  });
}

async function tableExists(client: pg.ClientBase, schema: string, name: string): Promise<boolean> {
  const { rows } = await client.query<{ ok: boolean }>('SELECT to_regclass($1) IS NOT NULL AS ok', [
    qualifiedName(schema, name),
  ]);
  return rows[0]?.ok ?? false;
}
