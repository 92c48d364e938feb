/** The test database: its URL, sessions on it, and a schema of each test's own, dropped after. */
import { randomBytes } from 'node:crypto';
import pg from 'pg';

/** The test database; override with TEST_DATABASE_URL. */
export const DATABASE_URL = process.env.TEST_DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/test';

/** A fresh connected client (to the test database by default); the caller ends it (see `withClient`). */
export async function connect(databaseUrl = DATABASE_URL): Promise<pg.Client> {
  const client = new pg.Client({ connectionString: databaseUrl });
  await client.connect();
  return client;
}

/** Runs `fn` with a fresh client (to the test database by default), ended afterwards. */
export async function withClient<T>(fn: (client: pg.Client) => Promise<T>, databaseUrl?: string): Promise<T> {
  const client = await connect(databaseUrl);
  try {
    return await fn(client);
  } finally {
    await client.end();
  }
}

/** A schema name no other test uses, so tests can run in parallel against one database. */
export function uniqueName(prefix: string): string {
  return `${prefix}_${randomBytes(5).toString('hex')}`;
}

/** Drops a test schema and everything in it (in the test database by default). */
export async function dropSchema(schema: string, databaseUrl?: string): Promise<void> {
  await withClient(async (c) => {
    const pid = (await c.query<{ pid: number }>('SELECT pg_backend_pid() AS pid')).rows[0]?.pid;
    // A test that failed half-way can leave a connection holding locks in its schema (a blocker
    // it opened, a swap it never committed): end such connections rather than wait for ever,
    // so the failure is reported instead of hanging the suite. Schemas are one test's own.
    const watchdog = setInterval(() => {
      withClient(
        (w) => w.query('SELECT pg_terminate_backend(b) FROM unnest(pg_blocking_pids($1)) AS b', [pid]),
        databaseUrl,
      ).catch(() => undefined);
    }, 5000);
    try {
      await c.query(`DROP SCHEMA IF EXISTS "${schema.replaceAll('"', '""')}" CASCADE`);
    } finally {
      clearInterval(watchdog);
    }
  }, databaseUrl);
}
