/**
 * The truth about each stream lives in PostgreSQL, next to the data, so that a batch's rows,
 * its high watermark and its sequence number commit in one transaction (G3).
 */
import type pg from 'pg';
import { asDatabaseError, PgBulkIngestError } from '../errors.ts';
import { parseJson, stringifyJson } from '../ingest/exact-json.ts';
import type { Json } from '../ingest/options.ts';
import type { IngestTable } from '../ingest/table-definition.ts';
import type { LedgerBatch, LedgerEntry } from './ledger.ts';

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
async function rowsIfTablesExist<R extends pg.QueryResultRow>(
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
  SELECT stream, committed_seq AS seq, redis_epoch AS epoch, high_watermark::text AS hw, committed_at AS at,
         redis_prefix AS owner, redis_gap AS gap, redis_gap_at AS gap_at
  FROM ${STATE_SCHEMA}.stream_state WHERE stream = ANY($1::text[])`;

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
  for (const row of rows) {
    found.set(row.stream, {
      seq: Number(row.seq),
      epoch: row.epoch,
      highWatermark: row.hw === null ? null : (parseJson(row.hw) as Json),
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
  tables: readonly Pick<IngestTable, 'schema' | 'name'>[],
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
    stringifyJson(r.highWatermark),
    r.batchId,
    r.prefix,
    r.gap,
  ]);
  if (rowCount === 0)
    throw streamConflict(r.stream, (await committedState(client, r.stream)).owner ?? '?', r.prefix);
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
 * -- record-batches
 * Inside the batches' transaction: one ledger row per batch, all of a coalesced group in this one
 * statement (one round trip per transaction, whatever the group's size). $4 is a JSON array of
 * LedgerBatch. A (stream, seq) already there can only be a seq numbered again in a new Redis
 * epoch after Redis lost data (a batch is never applied twice): the newer batch replaces the
 * row; the gap itself is recorded in stream_state and reported.
 */
const RECORD_BATCHES = `
  INSERT INTO ${STATE_SCHEMA}.batches AS b
    (stream, seq, epoch, batch_id, table_schema, table_name, high_watermark, metadata, rows,
     rejected_rows, bytes, enqueued_at, committed_at, outcome)
  SELECT $1, x.seq, $2, x.batch_id, x.table_schema, x.table_name, x.high_watermark, x.metadata,
         coalesce(x.rows, '{}'), coalesce(x.rejected_rows, 0), x.bytes, x.enqueued_at, clock_timestamp(), $3
  FROM jsonb_to_recordset($4::jsonb) AS x(seq bigint, batch_id text, table_schema text, table_name text,
       high_watermark jsonb, metadata jsonb, rows jsonb, rejected_rows integer, bytes bigint,
       enqueued_at timestamptz)
  ON CONFLICT (stream, seq) DO UPDATE
    SET epoch = EXCLUDED.epoch, batch_id = EXCLUDED.batch_id, table_schema = EXCLUDED.table_schema,
        table_name = EXCLUDED.table_name, high_watermark = EXCLUDED.high_watermark,
        metadata = EXCLUDED.metadata, rows = EXCLUDED.rows, rejected_rows = EXCLUDED.rejected_rows,
        bytes = EXCLUDED.bytes, enqueued_at = EXCLUDED.enqueued_at,
        committed_at = EXCLUDED.committed_at, outcome = EXCLUDED.outcome`;

export async function recordBatches(
  client: pg.ClientBase,
  stream: string,
  epoch: string,
  outcome: LedgerEntry['outcome'],
  batches: readonly LedgerBatch[],
): Promise<void> {
  const records = batches.map((b) => ({
    seq: b.seq,
    batch_id: b.batchId,
    table_schema: b.table?.schema ?? null,
    table_name: b.table?.name ?? null,
    high_watermark: b.highWatermark,
    metadata: b.metadata,
    rows: b.rows,
    rejected_rows: b.rejectedRows,
    bytes: b.bytes,
    enqueued_at: b.enqueuedAt?.toISOString() ?? null,
  }));
  await client.query(RECORD_BATCHES, [stream, epoch, outcome, stringifyJson(records)]);
}

interface LedgerRow {
  stream: string;
  seq: string;
  epoch: string | null;
  batch_id: string | null;
  table_schema: string | null;
  table_name: string | null;
  /** jsonb as text, parsed exactly (node-postgres would round integers beyond 2^53). */
  high_watermark: string | null;
  metadata: string | null;
  rows: Record<string, number>;
  rejected_rows: number;
  bytes: string | null;
  enqueued_at: Date | null;
  committed_at: Date;
  outcome: LedgerEntry['outcome'];
}

function ledgerEntryOf(row: LedgerRow): LedgerEntry {
  return {
    stream: row.stream,
    seq: Number(row.seq),
    epoch: row.epoch,
    batchId: row.batch_id,
    table:
      row.table_schema === null || row.table_name === null
        ? null
        : { schema: row.table_schema, name: row.table_name },
    highWatermark: row.high_watermark === null ? null : (parseJson(row.high_watermark) as Json),
    metadata: row.metadata === null ? null : (parseJson(row.metadata) as Json),
    rows: row.rows,
    rejectedRows: row.rejected_rows,
    bytes: row.bytes === null ? null : Number(row.bytes),
    enqueuedAt: row.enqueued_at,
    committedAt: row.committed_at,
    outcome: row.outcome,
  };
}

/**
 * -- ledger-history
 * The stream's last `limit` ledger rows, newest first; `seq` given: that batch's row only.
 * Read-only (SELECT on bulk_ingest.batches), and empty before any worker created the table.
 */
const LEDGER_HISTORY = `
  SELECT stream, seq, epoch, batch_id, table_schema, table_name, high_watermark::text AS high_watermark,
         metadata::text AS metadata, rows, rejected_rows, bytes, enqueued_at, committed_at, outcome
  FROM ${STATE_SCHEMA}.batches
  WHERE stream = $1 AND ($2::bigint IS NULL OR seq = $2)
  ORDER BY seq DESC LIMIT $3`;

export async function ledgerHistory(
  db: pg.Pool | pg.ClientBase,
  stream: string,
  limit: number,
  seq: number | null = null,
): Promise<LedgerEntry[]> {
  const rows = await rowsIfTablesExist<LedgerRow>(db, LEDGER_HISTORY, [stream, seq, limit]);
  return rows.map(ledgerEntryOf);
}

/**
 * -- prune-ledger
 * One small step of retention: deletes up to $2 ledger rows committed more than $1 days ago, in a
 * statement of its own (never in a batch's transaction). SKIP LOCKED: workers pruning at once
 * take different rows rather than wait on each other. Returns how many it deleted.
 */
const PRUNE_LEDGER = `
  DELETE FROM ${STATE_SCHEMA}.batches WHERE ctid = ANY(ARRAY(
    SELECT ctid FROM ${STATE_SCHEMA}.batches
    WHERE committed_at < now() - make_interval(days => $1::int)
    LIMIT $2 FOR UPDATE SKIP LOCKED))`;

export async function pruneLedgerStep(pool: pg.Pool, retentionDays: number, rows: number): Promise<number> {
  return (await pool.query(PRUNE_LEDGER, [retentionDays, rows])).rowCount ?? 0;
}

/** What `rewind` did, recorded in bulk_ingest.rewinds. */
export interface RewindRecord {
  readonly stream: string;
  readonly toSeq: number;
  readonly highWatermark: Json | null;
  readonly previousHighWatermark: Json | null;
  readonly committedSeq: number;
  readonly forced: boolean;
  /** Why it had to be forced (pending batches, a block), or null. */
  readonly note: string | null;
}

/**
 * -- record-rewind
 * In the rewind's transaction, with the stream locked: the stream's stored high watermark goes
 * back (its committed seq stays: new batches still get new numbers), and the rewind is recorded.
 */
export async function recordRewind(client: pg.ClientBase, r: RewindRecord): Promise<void> {
  await client.query(`UPDATE ${STATE_SCHEMA}.stream_state SET high_watermark = $2 WHERE stream = $1`, [
    r.stream,
    stringifyJson(r.highWatermark),
  ]);
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

/**
 * Forgets a stream's committed state, skips, ledger and rewinds (`forget`): it starts again as a
 * new stream, whose seqs 1, 2, ... must not mix with the old stream's rows.
 */
export async function forgetCommittedState(db: pg.Pool | pg.ClientBase, stream: string): Promise<void> {
  // Each table may be missing (the ledger tables came later than the others).
  for (const table of ['stream_state', 'skipped_batches', 'batches', 'rewinds'])
    await rowsIfTablesExist(db, `DELETE FROM ${STATE_SCHEMA}.${table} WHERE stream = $1`, [stream]);
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
