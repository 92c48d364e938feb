/**
 * The truth about each stream lives in PostgreSQL, next to the data, so that a batch's rows,
 * its high watermark and its sequence number commit in one transaction (G3).
 */
import type pg from 'pg';
import { PgBulkIngestError } from '../errors.ts';
import type { Json } from '../ingest/options.ts';
import type { IngestTable } from '../ingest/table-definition.ts';

/** Not `pg_bulk_ingest`: PostgreSQL reserves schema names starting with `pg_`. */
export const STATE_SCHEMA = 'bulk_ingest';

/**
 * -- create-state-tables
 * stream_state: one row per stream, the last committed seq and the Redis epoch it was numbered
 * in (stream-position.ts), the last gap Redis was found to have (lost data), and the Redis key
 * prefix of the deployment that owns the stream (see streamConflict). skipped_batches: what operators skipped
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
  -- Columns added after the first release; each checked first, as ALTER TABLE would lock the
  -- table even when there is nothing to do (workers start often, batches commit all the time).
  DO $$ BEGIN
    IF NOT EXISTS (SELECT FROM pg_attribute
                   WHERE attrelid = '${STATE_SCHEMA}.stream_state'::regclass AND attname = 'redis_prefix') THEN
      ALTER TABLE ${STATE_SCHEMA}.stream_state ADD COLUMN redis_prefix text;
    END IF;
    IF NOT EXISTS (SELECT FROM pg_attribute
                   WHERE attrelid = '${STATE_SCHEMA}.stream_state'::regclass AND attname = 'redis_epoch') THEN
      ALTER TABLE ${STATE_SCHEMA}.stream_state ADD COLUMN redis_epoch text, ADD COLUMN redis_gap text,
        ADD COLUMN redis_gap_at timestamptz;
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
const COMMITTED_STATE = `
  SELECT stream, committed_seq AS seq, redis_epoch AS epoch, high_watermark AS hw, committed_at AS at,
         redis_prefix AS owner, redis_gap AS gap, redis_gap_at AS gap_at
  FROM ${STATE_SCHEMA}.stream_state WHERE stream = ANY($1::text[])`;

interface StateRow {
  stream: string;
  seq: string;
  epoch: string | null;
  hw: Json | null;
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
  const exists = await db.query<{ ok: boolean }>(`SELECT to_regclass($1) IS NOT NULL AS ok`, [
    `${STATE_SCHEMA}.stream_state`,
  ]);
  if (!exists.rows[0]?.ok) return found;
  const { rows } = await db.query<StateRow>(COMMITTED_STATE, [streams]);
  for (const row of rows) {
    found.set(row.stream, {
      seq: Number(row.seq),
      epoch: row.epoch,
      highWatermark: row.hw,
      committedAt: row.at,
      owner: row.owner,
      redisGap: row.gap === null ? null : { description: row.gap, at: row.gap_at ?? row.at },
    });
  }
  return found;
}

export async function committedState(db: pg.Pool | pg.ClientBase, stream: string): Promise<CommittedState> {
  return (await committedStates(db, [stream])).get(stream) ?? NOTHING_COMMITTED;
}

/**
 * -- lock-stream-and-tables
 * Transaction-scoped advisory locks: first the stream's, then each table's in sorted order, so
 * two workers never wait on each other in a cycle (streams sharing a table take its lock in the
 * same global order). One statement: unnest yields the keys in array order. Released by COMMIT
 * or ROLLBACK, also when a worker dies. Lock keys are JSON arrays, so no two names share one.
 * Returns how long the locks took, in milliseconds.
 */
const LOCK_KEYS = `SELECT count(pg_advisory_xact_lock(hashtextextended(k, 0))) FROM unnest($1::text[]) AS k`;

export async function lockStreamAndTables(
  client: pg.ClientBase,
  stream: string,
  tables: readonly IngestTable[],
) {
  const start = performance.now();
  const tableKeys = [
    ...new Set(tables.map((t) => JSON.stringify(['pg-bulk-ingest table', t.schema, t.name]))),
  ];
  await client.query(LOCK_KEYS, [[JSON.stringify(['pg-bulk-ingest stream', stream]), ...tableKeys.sort()]]);
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
 * Inside the batch's transaction, with the stream locked: the stream is now at (epoch, seq),
 * owned by `prefix`. Updates nothing when another deployment owns the row: the caller throws
 * STREAM_CONFLICT. A gap, once recorded, stays until the next gap.
 */
const RECORD_COMMIT = `
  INSERT INTO ${STATE_SCHEMA}.stream_state AS s
    (stream, committed_seq, redis_epoch, high_watermark, batch_id, committed_at, redis_prefix, redis_gap, redis_gap_at)
  VALUES ($1, $2, $3, $4, $5, now(), $6, $7, CASE WHEN $7::text IS NULL THEN NULL ELSE now() END)
  ON CONFLICT (stream) DO UPDATE
    SET committed_seq = EXCLUDED.committed_seq, redis_epoch = EXCLUDED.redis_epoch,
        high_watermark = EXCLUDED.high_watermark, batch_id = EXCLUDED.batch_id,
        committed_at = EXCLUDED.committed_at, redis_prefix = EXCLUDED.redis_prefix,
        redis_gap = coalesce(EXCLUDED.redis_gap, s.redis_gap),
        redis_gap_at = coalesce(EXCLUDED.redis_gap_at, s.redis_gap_at)
    WHERE s.redis_prefix IS NULL OR s.redis_prefix = EXCLUDED.redis_prefix`;

export async function recordCommit(client: pg.ClientBase, r: CommitRecord) {
  const { rowCount } = await client.query(RECORD_COMMIT, [
    r.stream,
    r.seq,
    r.epoch,
    JSON.stringify(r.highWatermark),
    r.batchId,
    r.prefix,
    r.gap,
  ]);
  if (rowCount === 0)
    throw streamConflict(r.stream, (await committedState(client, r.stream)).owner ?? '?', r.prefix);
}

/** Records a skipped batch; the high watermark stays the last one really committed. */
export async function recordSkip(
  client: pg.ClientBase,
  position: { stream: string; seq: number; epoch: string },
  batchId: string | null,
  reason: string,
) {
  const { stream, seq, epoch } = position;
  await client.query(
    `INSERT INTO ${STATE_SCHEMA}.skipped_batches (stream, seq, batch_id, reason) VALUES ($1, $2, $3, $4)
     ON CONFLICT (stream, seq) DO NOTHING`,
    [stream, seq, batchId, reason],
  );
  await client.query(
    `INSERT INTO ${STATE_SCHEMA}.stream_state (stream, committed_seq, redis_epoch) VALUES ($1, $2, $3)
     ON CONFLICT (stream) DO UPDATE
       SET committed_seq = EXCLUDED.committed_seq, redis_epoch = EXCLUDED.redis_epoch, committed_at = now()`,
    [stream, seq, epoch],
  );
}

/** Forgets a stream's committed state and skips (`forget`): it starts again as a new stream. */
export async function forgetCommittedState(db: pg.Pool | pg.ClientBase, stream: string): Promise<void> {
  const exists = await db.query<{ ok: boolean }>(`SELECT to_regclass($1) IS NOT NULL AS ok`, [
    `${STATE_SCHEMA}.stream_state`,
  ]);
  if (!exists.rows[0]?.ok) return;
  await db.query(`DELETE FROM ${STATE_SCHEMA}.stream_state WHERE stream = $1`, [stream]);
  await db.query(`DELETE FROM ${STATE_SCHEMA}.skipped_batches WHERE stream = $1`, [stream]);
}
