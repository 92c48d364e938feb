/**
 * The truth about each stream lives in PostgreSQL, next to the data, so that a batch's rows,
 * its high watermark and its sequence number commit in one transaction (G3).
 */
import type pg from 'pg';
import { PgBulkIngestError } from '../errors.ts';
import { parseJson, stringifyJson } from '../ingest/exact-json.ts';
import type { Json } from '../ingest/options.ts';
import type { IngestTable } from '../ingest/table-definition.ts';
import { tableKey } from './batch-contract.ts';

/** Not `pg_bulk_ingest`: PostgreSQL reserves schema names starting with `pg_`. */
export const STATE_SCHEMA = 'bulk_ingest';

/**
 * -- create-state-tables
 * stream_state: one row per stream, the last committed seq, and the Redis key prefix of the
 * deployment that owns the stream (see streamConflict). skipped_batches: what operators skipped
 * and why. Creation is serialised by an advisory lock: several workers starting at
 * once would otherwise race in CREATE TABLE IF NOT EXISTS (a unique violation in pg_type).
 */
const CREATE_STATE_TABLES = `
  CREATE SCHEMA IF NOT EXISTS ${STATE_SCHEMA};
  CREATE TABLE IF NOT EXISTS ${STATE_SCHEMA}.stream_state (
    stream text PRIMARY KEY,
    committed_seq bigint NOT NULL,
    high_watermark jsonb,
    batch_id text,
    committed_at timestamptz NOT NULL DEFAULT now()
  );
  CREATE TABLE IF NOT EXISTS ${STATE_SCHEMA}.skipped_batches (
    stream text NOT NULL,
    seq bigint NOT NULL,
    batch_id text,
    reason text,
    skipped_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (stream, seq)
  );
  -- Added after the first release; checked first, as ALTER TABLE would lock the table even when
  -- there is nothing to do (workers start often, batches commit all the time).
  DO $$ BEGIN
    IF NOT EXISTS (SELECT FROM pg_attribute
                   WHERE attrelid = '${STATE_SCHEMA}.stream_state'::regclass AND attname = 'redis_prefix') THEN
      ALTER TABLE ${STATE_SCHEMA}.stream_state ADD COLUMN redis_prefix text;
    END IF;
  END $$;`;

export async function ensureStateTables(pool: pg.Pool): Promise<void> {
  const client = await pool.connect();
  try {
    await client.query('BEGIN');
    await client.query(`SELECT pg_advisory_xact_lock(hashtextextended('pg-bulk-ingest state tables', 0))`);
    await client.query(CREATE_STATE_TABLES);
    await client.query('COMMIT');
  } catch (error) {
    await client.query('ROLLBACK').catch(() => undefined);
    throw error;
  } finally {
    client.release();
  }
}

export async function committedSeq(db: pg.Pool | pg.ClientBase, stream: string): Promise<number> {
  const { rows } = await db.query<{ seq: string }>(
    `SELECT committed_seq AS seq FROM ${STATE_SCHEMA}.stream_state WHERE stream = $1`,
    [stream],
  );
  return rows[0] ? Number(rows[0].seq) : 0;
}

export interface CommittedState {
  readonly seq: number;
  readonly highWatermark: Json | null;
  readonly committedAt: Date | null;
  /**
   * The Redis key prefix of the deployment whose batches the row counts, or null (no commit
   * yet, or a row from before prefixes were recorded: the next commit claims it).
   */
  readonly owner: string | null;
}

export async function committedState(db: pg.Pool | pg.ClientBase, stream: string): Promise<CommittedState> {
  // As text, parsed here: node-postgres would JSON.parse jsonb and round integers beyond 2^53.
  const { rows } = await db.query<{ seq: string; hw: string | null; at: Date; owner: string | null }>(
    `SELECT committed_seq AS seq, high_watermark::text AS hw, committed_at AS at, redis_prefix AS owner
     FROM ${STATE_SCHEMA}.stream_state WHERE stream = $1`,
    [stream],
  );
  const row = rows[0];
  return row
    ? {
        seq: Number(row.seq),
        highWatermark: row.hw === null ? null : (parseJson(row.hw) as Json),
        committedAt: row.at,
        owner: row.owner,
      }
    : { seq: 0, highWatermark: null, committedAt: null, owner: null };
}

/**
 * -- lock-stream-and-tables
 * Transaction-scoped advisory locks: first the stream's, then each table's in sorted order, so
 * two workers never wait on each other in a cycle (streams sharing a table take its lock in the
 * same global order). Released by COMMIT or ROLLBACK, also when a worker dies.
 * Returns how long the locks took, in milliseconds.
 */
export async function lockStreamAndTables(
  client: pg.ClientBase,
  stream: string,
  tables: readonly IngestTable[],
) {
  const start = performance.now();
  await client.query(`SELECT pg_advisory_xact_lock(hashtextextended($1, 0))`, [
    `pg-bulk-ingest stream ${stream}`,
  ]);
  const keys = [...new Set(tables.map((t) => `pg-bulk-ingest table ${tableKey(t)}`))].sort();
  for (const key of keys) await client.query(`SELECT pg_advisory_xact_lock(hashtextextended($1, 0))`, [key]);
  return performance.now() - start;
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

/**
 * Inside the batch's transaction, with the stream locked: the stream is now at `seq`, owned by
 * `prefix`. Throws STREAM_CONFLICT if another deployment owns it.
 */
export async function recordCommit(
  client: pg.ClientBase,
  stream: string,
  seq: number,
  highWatermark: Json,
  batchId: string,
  prefix: string,
) {
  const { rowCount } = await client.query(
    `INSERT INTO ${STATE_SCHEMA}.stream_state (stream, committed_seq, high_watermark, batch_id, committed_at, redis_prefix)
     VALUES ($1, $2, $3, $4, now(), $5)
     ON CONFLICT (stream) DO UPDATE
       SET committed_seq = EXCLUDED.committed_seq, high_watermark = EXCLUDED.high_watermark,
           batch_id = EXCLUDED.batch_id, committed_at = EXCLUDED.committed_at, redis_prefix = EXCLUDED.redis_prefix
       WHERE stream_state.redis_prefix IS NULL OR stream_state.redis_prefix = EXCLUDED.redis_prefix`,
    [stream, seq, stringifyJson(highWatermark), batchId, prefix],
  );
  if (rowCount === 0)
    throw streamConflict(stream, (await committedState(client, stream)).owner ?? '?', prefix);
}

export async function recordSkip(
  client: pg.ClientBase,
  stream: string,
  seq: number,
  batchId: string | null,
  reason: string,
) {
  await client.query(
    `INSERT INTO ${STATE_SCHEMA}.skipped_batches (stream, seq, batch_id, reason) VALUES ($1, $2, $3, $4)
     ON CONFLICT (stream, seq) DO NOTHING`,
    [stream, seq, batchId, reason],
  );
  // The high watermark stays the last one really committed.
  await client.query(
    `INSERT INTO ${STATE_SCHEMA}.stream_state (stream, committed_seq) VALUES ($1, $2)
     ON CONFLICT (stream) DO UPDATE SET committed_seq = EXCLUDED.committed_seq, committed_at = now()`,
    [stream, seq],
  );
}
