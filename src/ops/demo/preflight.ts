/**
 * What the demo asks of the database outside the queue: are the services there at all (a new
 * user's first run should fail in seconds with what to do, not hang retrying), and how many rows
 * its tables hold at the end.
 */
import { Redis } from 'ioredis';
import pg from 'pg';
import { PgBulkIngestError } from '../../errors.ts';
import { quoteIdent } from '../../ingest/sql.ts';

/** Fails fast, naming the service, the URL and the setting, if PostgreSQL or Redis does not answer. */
export async function checkServices(config: { databaseUrl: string; redisUrl: string }): Promise<void> {
  const client = new pg.Client({ connectionString: config.databaseUrl, connectionTimeoutMillis: 5000 });
  try {
    await client.connect();
    await client.query('SELECT 1');
  } catch (error) {
    throw unreachable('PostgreSQL', config.databaseUrl, '--database-url / DATABASE_URL', error);
  } finally {
    await client.end().catch(() => undefined);
  }
  // Not connectRedis: its commands wait for Redis forever, which is right for workers, not here.
  const redis = new Redis(config.redisUrl, {
    lazyConnect: true,
    connectTimeout: 5000,
    maxRetriesPerRequest: 0,
    retryStrategy: () => null,
  });
  let connectionError: unknown;
  redis.on('error', (error) => {
    connectionError = error;
  });
  try {
    await redis.connect();
    await redis.ping();
  } catch (error) {
    throw unreachable('Redis', config.redisUrl, '--redis-url / REDIS_URL', connectionError ?? error);
  } finally {
    redis.disconnect();
  }
}

function unreachable(service: string, url: string, setting: string, error: unknown): PgBulkIngestError {
  const reason = error instanceof Error ? error.message || error.name : String(error);
  return new PgBulkIngestError(
    'INVALID_CONFIG',
    `Cannot reach ${service} at ${url} (${reason}): start it, or point ${setting} at it`,
  );
}

/** Rows in each of `tables` of `schema` (0 for a table not created yet). */
export async function countRows(
  databaseUrl: string,
  schema: string,
  tables: readonly string[],
): Promise<Map<string, number>> {
  const client = new pg.Client({ connectionString: databaseUrl });
  await client.connect();
  try {
    const counts = new Map<string, number>();
    for (const table of tables) {
      const relation = `${quoteIdent(schema)}.${quoteIdent(table)}`;
      const { rows } = await client.query<{ exists: boolean }>(
        'SELECT to_regclass($1) IS NOT NULL AS exists',
        [relation],
      );
      const count = rows[0]?.exists
        ? (await client.query<{ n: string }>(`SELECT count(*) AS n FROM ${relation}`)).rows[0]?.n
        : 0;
      counts.set(table, Number(count ?? 0));
    }
    return counts;
  } finally {
    await client.end();
  }
}
