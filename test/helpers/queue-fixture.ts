/**
 * The fixture of a multi-process queue test: its own schema, queue name and key prefix, a fleet
 * of worker processes and a session on the database, all cleaned up afterwards, pass or fail
 * (worker processes killed first, their output printed if the test failed).
 */
import pg from 'pg';
import { DATABASE_URL, dropSchema, uniqueName } from './pg.ts';
import { type Connection, cleanQueue, REDIS_URL } from './queue.ts';
import { forgetStreams } from './stream-state.ts';
import { WorkerFleet } from './worker-fleet.ts';

export interface QueueFixture {
  /** A schema only this test uses; stream names start with `<schema>.`. */
  readonly schema: string;
  readonly connection: Connection;
  readonly fleet: WorkerFleet;
  /** A session on the test database, ended afterwards. */
  readonly db: pg.Client;
}

/**
 * Runs `fn` with its own schema, queue name and key prefix. Afterwards, pass or fail: kills every
 * worker it started, prints their output if it failed, drops the schema, forgets its streams in
 * bulk_ingest, and removes the queue and every key under the prefix.
 */
export async function withQueueFixture(
  tag: string,
  fn: (f: QueueFixture) => Promise<void>,
  urls: { databaseUrl?: string; redisUrl?: string; cleanRedis?: boolean } = {},
): Promise<void> {
  const schema = uniqueName(tag);
  const connection: Connection = {
    databaseUrl: urls.databaseUrl ?? DATABASE_URL,
    redisUrl: urls.redisUrl ?? REDIS_URL,
    queueName: `q-${schema}`,
    prefix: `pgbi-${schema}`,
  };
  const fleet = new WorkerFleet(connection);
  const db = new pg.Client({ connectionString: connection.databaseUrl });
  db.on('error', () => undefined); // a PostgreSQL restart must not crash the test process
  await db.connect();
  try {
    await fn({ schema, connection, fleet, db });
  } catch (error) {
    if (fleet.all.length > 0) console.error(`[${tag}] failed; worker output:\n${fleet.diagnostics()}`);
    throw error;
  } finally {
    await fleet.killAll();
    await db.end().catch(() => undefined);
    await dropSchema(schema, connection.databaseUrl)
      .then(() => forgetStreams(schema, connection.databaseUrl))
      .catch((e) => console.error(`[${tag}] cleanup: ${e}`));
    if (urls.cleanRedis !== false) await cleanQueue(connection, connection.redisUrl).catch(() => undefined);
  }
}
