/**
 * A clean start for the demo, touching only what is the demo's own: its schema (refused if the
 * schema holds anything else), its streams' committed state in PostgreSQL, its streams' keys in
 * Redis, and its streams' kick jobs. Other streams on the same Redis, queue and database are left
 * alone, so the demo can share them with real work (as in docker compose).
 *
 * This knows the Redis key layout of src/queue/redis-scripts.ts; a `StreamAdmin.forget(stream)`
 * would be the better home for the Redis and state-table part.
 */
import { Queue } from 'bullmq';
import type { Redis } from 'ioredis';
import pg from 'pg';
import { PgBulkIngestError } from '../../errors.ts';
import { quoteIdent } from '../../ingest/sql.ts';
import type { IngestTable } from '../../ingest/table-definition.ts';
import { STATE_SCHEMA } from '../../queue/stream-state.ts';
import { connectRedis } from '../../queue/stream-store.ts';

export interface ResetOptions {
  readonly databaseUrl: string;
  readonly redisUrl: string;
  readonly queueName: string;
  readonly prefix: string;
  readonly schema: string;
  readonly tables: readonly IngestTable[];
  readonly streams: readonly string[];
}

export async function resetDemoState(options: ResetOptions): Promise<void> {
  await resetPostgres(options);
  const redis = connectRedis(options.redisUrl);
  try {
    for (const stream of options.streams) await forgetStream(redis, options.prefix, stream);
    await removeKicks(redis, options.queueName, options.streams);
  } finally {
    redis.disconnect();
  }
}

async function resetPostgres({ databaseUrl, schema, tables, streams }: ResetOptions): Promise<void> {
  const client = new pg.Client({ connectionString: databaseUrl });
  await client.connect();
  try {
    const { rows } = await client.query<{ name: string }>(
      `SELECT c.relname AS name FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
       WHERE n.nspname = $1 AND c.relkind IN ('r', 'p', 'v', 'm', 'f') AND c.relname <> ALL($2)`,
      [schema, tables.map((t) => t.name)],
    );
    if (rows.length > 0) {
      throw new PgBulkIngestError(
        'INVALID_OPTIONS',
        `Schema "${schema}" holds more than the demo's tables (${rows.map((r) => r.name).join(', ')}): the demo drops its schema to start clean, so pick another with --schema`,
      );
    }
    await client.query(`DROP SCHEMA IF EXISTS ${quoteIdent(schema)} CASCADE`);
    const { rows: state } = await client.query<{ exists: boolean }>(
      `SELECT to_regclass($1) IS NOT NULL AS exists`,
      [`${STATE_SCHEMA}.stream_state`],
    );
    if (state[0]?.exists) {
      await client.query(`DELETE FROM ${STATE_SCHEMA}.stream_state WHERE stream = ANY($1)`, [streams]);
      await client.query(`DELETE FROM ${STATE_SCHEMA}.skipped_batches WHERE stream = ANY($1)`, [streams]);
    }
  } finally {
    await client.end();
  }
}

/** Deletes a stream's hash, batch headers, their row parts and idempotency keys. */
async function forgetStream(redis: Redis, prefix: string, stream: string): Promise<void> {
  const streamKey = `${prefix}:stream:${stream}`;
  for await (const keys of scan(redis, `${escapeGlob(streamKey)}:batch:*`)) {
    for (const key of keys) {
      const header = await redis.get(key);
      const { batchId, parts } = header ? (JSON.parse(header) as { batchId?: string; parts?: number }) : {};
      for (let i = 0; i < (parts ?? 0); i++) await redis.del(`${prefix}:part:${batchId}:${i}`);
      await redis.del(key);
    }
  }
  for await (const keys of scan(redis, `${escapeGlob(`${prefix}:batchid:${stream}`)}:*`)) {
    if (keys.length > 0) await redis.del(...keys);
  }
  await redis.del(streamKey);
  await redis.srem(`${prefix}:streams`, stream);
}

/**
 * Kick job ids are `kick-<stream hash>-<seq>`: an old completed kick for seq 1 would make
 * BullMQ ignore the new one (same id), leaving the stream to the workers' periodic sweep.
 */
async function removeKicks(redis: Redis, queueName: string, streams: readonly string[]): Promise<void> {
  const queue = new Queue(queueName, { connection: redis });
  try {
    const jobs = await queue.getJobs([
      'completed',
      'failed',
      'wait',
      'delayed',
      'prioritized',
      'waiting-children',
    ]);
    for (const job of jobs) {
      if (job && streams.includes((job.data as { stream?: string } | undefined)?.stream ?? ''))
        await job.remove().catch(() => undefined);
    }
  } finally {
    await queue.close();
  }
}

async function* scan(redis: Redis, pattern: string): AsyncGenerator<string[]> {
  let cursor = '0';
  do {
    const [next, keys] = await redis.scan(cursor, 'MATCH', pattern, 'COUNT', 1000);
    cursor = next;
    yield keys;
  } while (cursor !== '0');
}

function escapeGlob(text: string): string {
  return text.replace(/[*?[\]\\]/g, '\\$&');
}
