/**
 * What PostgreSQL (the truth, schema bulk_ingest) holds about a test's streams: their committed
 * seqs, forgetting them afterwards, and a role that may only read it. A test's streams are named
 * `<its schema>.<table>`.
 */
import type pg from 'pg';
import { DATABASE_URL, uniqueName, withClient } from './pg.ts';

async function exists(db: pg.ClientBase, table: string): Promise<boolean> {
  const { rows } = await db.query('SELECT to_regclass($1) IS NOT NULL AS ok', [`bulk_ingest.${table}`]);
  return rows[0]?.ok === true;
}

/** Committed seq of each stream (0 for one PostgreSQL does not know). */
export async function committedSeqs(
  db: pg.ClientBase,
  streams: readonly string[],
): Promise<Map<string, number>> {
  const found = new Map(streams.map((s) => [s, 0]));
  if (!(await exists(db, 'stream_state'))) return found;
  const { rows } = await db.query<{ stream: string; seq: string }>(
    'SELECT stream, committed_seq AS seq FROM bulk_ingest.stream_state WHERE stream = ANY($1)',
    [streams],
  );
  for (const row of rows) found.set(row.stream, Number(row.seq));
  return found;
}

/**
 * Removes every trace of the streams of `schema` from bulk_ingest: their state, skipped batches,
 * ledger and rewinds. `databaseUrl` defaults to the test database's; a fresh session, as the
 * test's own may be broken.
 */
export async function forgetStreams(schema: string, databaseUrl?: string): Promise<void> {
  await withClient(async (db) => {
    for (const table of ['stream_state', 'skipped_batches', 'batches', 'rewinds'])
      if (await exists(db, table))
        await db.query(`DELETE FROM bulk_ingest.${table} WHERE stream LIKE $1`, [`${schema}.%`]);
  }, databaseUrl);
}

/**
 * Runs `fn` with the URL of the test database as a new role that may only read bulk_ingest (USAGE
 * on the schema, SELECT on its tables); the role is dropped afterwards.
 */
export async function withReadOnlyRole(fn: (databaseUrl: string) => Promise<void>): Promise<void> {
  const role = uniqueName('reader');
  await withClient(async (c) => {
    await c.query(`CREATE ROLE ${role} LOGIN`);
    await c.query(`GRANT USAGE ON SCHEMA bulk_ingest TO ${role}`);
    await c.query(`GRANT SELECT ON ALL TABLES IN SCHEMA bulk_ingest TO ${role}`);
  });
  const url = new URL(DATABASE_URL);
  url.username = role;
  try {
    await fn(url.toString());
  } finally {
    await withClient(async (c) => {
      await c.query(`REVOKE ALL ON ALL TABLES IN SCHEMA bulk_ingest FROM ${role}`);
      await c.query(`REVOKE ALL ON SCHEMA bulk_ingest FROM ${role}`);
      await c.query(`DROP ROLE ${role}`);
    });
  }
}
