/**
 * A stream's committed state, bulk_ingest.stream_state: the last committed seq and Redis epoch,
 * its high watermark, the deployment that owns it, the last gap Redis was found to have; recorded
 * in each batch's transaction (G2, G3), or when an operator skips a batch (skipped_batches).
 */
import type pg from 'pg';
import { PgBulkIngestError } from '../errors.ts';
import { parseJson, stringifyJson } from '../ingest/exact-json.ts';
import type { Json } from '../ingest/options.ts';
import { type LedgerBatch, ledgerRecords, recordBatches, recordBatchesSql } from './ledger.ts';
import { rowsIfTablesExist, STATE_SCHEMA } from './stream-state.ts';

export interface CommittedState {
  readonly seq: number;
  /** The Redis epoch `seq` was numbered in (null before the first commit). */
  readonly epoch: string | null;
  readonly highWatermark: Json | null;
  readonly committedAt: Date | null;
  /**
   * The Redis key prefix of the deployment whose batches the row counts, or null (no commit
   * yet, or a row from before prefixes were recorded: the next commit claims it).
   */
  readonly owner: string | null;
  /** The last time Redis was found to have lost data of the stream, and what. */
  readonly redisGap: { readonly description: string; readonly at: Date } | null;
}

const NOTHING_COMMITTED: CommittedState = {
  seq: 0,
  epoch: null,
  highWatermark: null,
  committedAt: null,
  owner: null,
  redisGap: null,
};

/**
 * -- committed-state
 * The stream's row, or "nothing committed". Read-only: works for a role that may only SELECT,
 * and before any worker created the tables.
 */
const STATE_COLUMNS = `stream, committed_seq AS seq, redis_epoch AS epoch, high_watermark::text AS hw,
  committed_at AS at, redis_prefix AS owner, redis_gap AS gap, redis_gap_at AS gap_at`;

const COMMITTED_STATE = `
  SELECT ${STATE_COLUMNS} FROM ${STATE_SCHEMA}.stream_state WHERE stream = ANY($1::text[])`;

interface StateRow {
  stream: string;
  seq: string;
  epoch: string | null;
  /** As text, parsed here: node-postgres would JSON.parse jsonb and round integers beyond 2^53. */
  hw: string | null;
  at: Date;
  owner: string | null;
  gap: string | null;
  gap_at: Date | null;
}

/** The committed state of each of `streams` (missing ones: nothing committed). */
export async function committedStates(
  db: pg.Pool | pg.ClientBase,
  streams: readonly string[],
): Promise<Map<string, CommittedState>> {
  const found = new Map<string, CommittedState>();
  if (streams.length === 0) return found;
  // One round trip: the worker asks before every transaction.
  const rows = await rowsIfTablesExist<StateRow>(db, COMMITTED_STATE, [streams]);
  for (const row of rows) found.set(row.stream, stateOf(row));
  return found;
}

function stateOf(row: StateRow): CommittedState {
  return {
    seq: Number(row.seq),
    epoch: row.epoch,
    highWatermark: row.hw === null ? null : (parseJson(row.hw) as Json),
    committedAt: row.at,
    owner: row.owner,
    redisGap: row.gap === null ? null : { description: row.gap, at: row.gap_at ?? row.at },
  };
}

export async function committedState(db: pg.Pool | pg.ClientBase, stream: string): Promise<CommittedState> {
  return (await committedStates(db, [stream])).get(stream) ?? NOTHING_COMMITTED;
}

/**
 * Two deployments (Redis key prefixes) writing streams of the same name into one database
 * would count each other's batches as their own, and skip theirs as already applied: refused.
 */
export function streamConflict(stream: string, owner: string, prefix: string): PgBulkIngestError {
  return new PgBulkIngestError(
    'STREAM_CONFLICT',
    `Stream ${stream}: its committed state in ${STATE_SCHEMA}.stream_state belongs to the deployment with Redis key prefix "${owner}", and this worker's prefix is "${prefix}". Give the streams of each deployment names of their own; or, if this deployment took the stream over, UPDATE ${STATE_SCHEMA}.stream_state SET redis_prefix = '${prefix}' WHERE stream = '${stream}' and retry.`,
    { stream },
  );
}

/** What a commit records about the stream, in the batch's transaction. */
export interface CommitRecord {
  readonly stream: string;
  readonly seq: number;
  readonly epoch: string;
  readonly highWatermark: Json;
  readonly batchId: string;
  /** The deployment's Redis key prefix: the stream's owner. */
  readonly prefix: string;
  /** Set when this commit is the first after Redis was found to have lost data. */
  readonly gap: string | null;
}

/**
 * -- record-commit
 * Inside the batches' transaction, with the stream locked: the stream is now at (epoch, seq),
 * owned by `prefix`, and the ledger has a row per batch (record-batches, in the same statement:
 * one round trip). Updates nothing when another deployment owns the row: the caller throws
 * STREAM_CONFLICT. A gap, once recorded, stays until the next gap. Returns the row as recorded.
 */
const RECORD_COMMIT = `
  WITH ledger AS (${recordBatchesSql({ stream: '$1', epoch: '$3', outcome: "'committed'", records: '$8' })})
  INSERT INTO ${STATE_SCHEMA}.stream_state AS s
    (stream, committed_seq, redis_epoch, high_watermark, batch_id, committed_at, redis_prefix, redis_gap, redis_gap_at)
  VALUES ($1, $2, $3, $4, $5, now(), $6, $7, CASE WHEN $7::text IS NULL THEN NULL ELSE now() END)
  ON CONFLICT (stream) DO UPDATE
    SET committed_seq = EXCLUDED.committed_seq, redis_epoch = EXCLUDED.redis_epoch,
        high_watermark = EXCLUDED.high_watermark, batch_id = EXCLUDED.batch_id,
        committed_at = EXCLUDED.committed_at, redis_prefix = EXCLUDED.redis_prefix,
        redis_gap = coalesce(EXCLUDED.redis_gap, s.redis_gap),
        redis_gap_at = coalesce(EXCLUDED.redis_gap_at, s.redis_gap_at)
    WHERE s.redis_prefix IS NULL OR s.redis_prefix = EXCLUDED.redis_prefix
  RETURNING ${STATE_COLUMNS}`;

/** Records the commit of `batches` (the group, in seq order), and returns the stream's state after it. */
export async function recordCommit(
  client: pg.ClientBase,
  r: CommitRecord,
  batches: readonly LedgerBatch[],
): Promise<CommittedState> {
  const { rows } = await client.query<StateRow>(RECORD_COMMIT, [
    r.stream,
    r.seq,
    r.epoch,
    stringifyJson(r.highWatermark),
    r.batchId,
    r.prefix,
    r.gap,
    ledgerRecords(batches),
  ]);
  const row = rows[0];
  if (row === undefined)
    throw streamConflict(r.stream, (await committedState(client, r.stream)).owner ?? '?', r.prefix);
  return stateOf(row);
}

/**
 * Sets the stream's stored high watermark (`rewind`, in its transaction, with the stream locked);
 * its committed seq stays: new batches still get new numbers.
 */
export async function setCommittedHighWatermark(
  client: pg.ClientBase,
  stream: string,
  highWatermark: Json | null,
): Promise<void> {
  await client.query(`UPDATE ${STATE_SCHEMA}.stream_state SET high_watermark = $2 WHERE stream = $1`, [
    stream,
    stringifyJson(highWatermark),
  ]);
}

/**
 * Records a skipped batch (in skipped_batches with the reason, and in the ledger, `batch` being
 * what its header said, if it is still there); the high watermark stays the last one really
 * committed.
 */
export async function recordSkip(
  client: pg.ClientBase,
  position: { stream: string; seq: number; epoch: string },
  batch: LedgerBatch,
  reason: string,
) {
  const { stream, seq, epoch } = position;
  await client.query(
    `INSERT INTO ${STATE_SCHEMA}.skipped_batches (stream, seq, batch_id, reason) VALUES ($1, $2, $3, $4)
     ON CONFLICT (stream, seq) DO NOTHING`,
    [stream, seq, batch.batchId, reason],
  );
  await recordBatches(client, stream, epoch, 'skipped', [batch]);
  await client.query(
    `INSERT INTO ${STATE_SCHEMA}.stream_state (stream, committed_seq, redis_epoch) VALUES ($1, $2, $3)
     ON CONFLICT (stream) DO UPDATE
       SET committed_seq = EXCLUDED.committed_seq, redis_epoch = EXCLUDED.redis_epoch, committed_at = now()`,
    [stream, seq, epoch],
  );
}

/**
 * -- skipped-batch-counts
 * Input: the streams this queue knows (the state tables are shared by every queue of the
 * database). Output: skipped batches per stream, from what `skip` records. The table holds one
 * row per skipped batch, so this stays cheap; it may not exist before the first worker starts.
 */
const SKIPPED_BATCH_COUNTS = `
  SELECT stream, count(*) AS skipped FROM ${STATE_SCHEMA}.skipped_batches
  WHERE stream = ANY($1::text[]) GROUP BY stream`;

export async function skippedBatchCounts(
  pool: pg.Pool,
  streams: readonly string[],
): Promise<Map<string, number>> {
  if (streams.length === 0) return new Map();
  const rows = await rowsIfTablesExist<{ stream: string; skipped: string }>(pool, SKIPPED_BATCH_COUNTS, [
    streams,
  ]);
  return new Map(rows.map((row) => [row.stream, Number(row.skipped)]));
}
