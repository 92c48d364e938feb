/**
 * The schema bulk_ingest, where the truth about each stream lives, in PostgreSQL next to the data,
 * so that a batch's rows, its high watermark and its sequence number commit in one transaction
 * (G3): its tables, created once by whichever worker starts first, and the helpers every query on
 * them shares. What each table holds has a file of its own: the committed state
 * (committed-state.ts), the ledger (ledger.ts), the rewinds (rewind.ts); the locks that guard
 * them, stream-locks.ts.
 */
import type pg from 'pg';
import { asDatabaseError } from '../errors.ts';

/** Not `pg_bulk_ingest`: PostgreSQL reserves schema names starting with `pg_`. */
export const STATE_SCHEMA = 'bulk_ingest';

/**
 * -- create-state-tables
 * stream_state: one row per stream, the last committed seq and the Redis epoch it was numbered
 * in (stream-position.ts), the last gap Redis was found to have (lost data), and the Redis key
 * prefix of the deployment that owns the stream (see streamConflict). skipped_batches: what operators skipped
 * and why. batches: the ledger, one row per batch (ledger.ts); its committed_at index serves the
 * retention pruning. rewinds: each `rewind`, what it changed and whether it was forced. Creation is serialised by an advisory lock: several workers starting at
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
    -- Tables added after the first release, checked first too: CREATE INDEX takes a SHARE lock
    -- on its table before it finds the index already there, which would stall every commit.
    IF to_regclass('${STATE_SCHEMA}.batches') IS NULL THEN
      CREATE TABLE ${STATE_SCHEMA}.batches (
        stream text NOT NULL,
        seq bigint NOT NULL,
        epoch text,
        batch_id text,
        table_schema text,
        table_name text,
        high_watermark jsonb,
        metadata jsonb,
        rows jsonb NOT NULL DEFAULT '{}',
        rejected_rows integer NOT NULL DEFAULT 0,
        bytes bigint,
        enqueued_at timestamptz,
        committed_at timestamptz NOT NULL DEFAULT clock_timestamp(),
        outcome text NOT NULL CHECK (outcome IN ('committed', 'skipped')),
        PRIMARY KEY (stream, seq)
      );
      CREATE INDEX batches_committed_at ON ${STATE_SCHEMA}.batches (committed_at);
    END IF;
    IF to_regclass('${STATE_SCHEMA}.rewinds') IS NULL THEN
      CREATE TABLE ${STATE_SCHEMA}.rewinds (
        id bigserial PRIMARY KEY,
        stream text NOT NULL,
        to_seq bigint NOT NULL,
        high_watermark jsonb,
        previous_high_watermark jsonb,
        committed_seq bigint NOT NULL,
        forced boolean NOT NULL,
        note text,
        rewound_at timestamptz NOT NULL DEFAULT now()
      );
    END IF;
  END $$;`;

/** Runs `body` in a transaction on a pooled connection: COMMIT if it resolves, else ROLLBACK. */
export async function inTransaction<T>(
  pool: pg.Pool,
  body: (client: pg.PoolClient) => Promise<T>,
): Promise<T> {
  const client = await pool.connect();
  try {
    await client.query('BEGIN');
    const result = await body(client);
    await client.query('COMMIT');
    return result;
  } catch (error) {
    await client.query('ROLLBACK').catch(() => undefined);
    throw error;
  } finally {
    client.release();
  }
}

/**
 * The rows of a query on the state tables, or none when its table does not exist yet (no
 * worker has started on the database: nothing is committed). One round trip, no catalog check;
 * so never inside a transaction that must go on when the table is missing.
 */
export async function rowsIfTablesExist<R extends pg.QueryResultRow>(
  db: pg.Pool | pg.ClientBase,
  text: string,
  values: unknown[],
): Promise<R[]> {
  try {
    return (await db.query<R>(text, values)).rows;
  } catch (error) {
    if (asDatabaseError(error)?.code === '42P01') return []; // undefined_table
    throw error;
  }
}

export async function ensureStateTables(pool: pg.Pool): Promise<void> {
  await inTransaction(pool, async (client) => {
    await client.query(`SELECT pg_advisory_xact_lock(hashtextextended('pg-bulk-ingest state tables', 0))`);
    await client.query(CREATE_STATE_TABLES);
  });
}

/**
 * Forgets a stream's committed state, skips, ledger and rewinds (`forget`): it starts again as a
 * new stream, whose seqs 1, 2, ... must not mix with the old stream's rows.
 */
export async function forgetCommittedState(db: pg.Pool | pg.ClientBase, stream: string): Promise<void> {
  // Each table may be missing (the ledger tables came later than the others).
  for (const table of ['stream_state', 'skipped_batches', 'batches', 'rewinds'])
    await rowsIfTablesExist(db, `DELETE FROM ${STATE_SCHEMA}.${table} WHERE stream = $1`, [stream]);
}
