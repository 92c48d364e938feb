/**
 * A clean start for the demo, touching only what is the demo's own: its schema (refused if the
 * schema holds anything else), its streams' committed state in PostgreSQL, its streams' keys in
 * Redis, and its streams' kick jobs. Other streams on the same Redis, queue and database are left
 * alone, so the demo can share them with real work (as in docker compose).
 *
 * The Redis and state-table part is what `StreamAdmin.forget` does, without its refusal of
 * streams with pending batches (the demo starts over whatever is pending).
 */
import { Queue } from 'bullmq';
import type { Redis } from 'ioredis';
import pg from 'pg';
import { PgBulkIngestError } from '../../errors.ts';
import { quoteIdent } from '../../ingest/sql.ts';
import type { IngestTable } from '../../ingest/table-definition.ts';
import { bullQueues, type QueueNames } from '../../queue/queue-config.ts';
import { forgetCommittedState } from '../../queue/stream-state.ts';
import { connectRedis, StreamStore } from '../../queue/stream-store.ts';

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
    const store = new StreamStore(redis, options.prefix);
    for (const stream of options.streams) await store.forget(stream);
    await removeKicks(redis, options, options.streams);
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
    for (const stream of streams) await forgetCommittedState(client, stream);
  } finally {
    await client.end();
  }
}

/**
 * The demo's streams start from nothing: their stream state goes (as `forget` does), and their
 * kicks too. BullMQ would otherwise ignore a new kick while a finished one keeps its
 * de-duplication id, leaving the stream to the workers' periodic sweep.
 */
async function removeKicks(redis: Redis, names: QueueNames, streams: readonly string[]): Promise<void> {
  const queues = bullQueues(names);
  const queue = new Queue(queues.kicks, { connection: redis, prefix: queues.prefix });
  try {
    const jobs = await queue.getJobs(['completed', 'failed', 'wait', 'delayed', 'prioritized']);
    for (const job of jobs) {
      if (job && streams.includes((job.data as { stream?: string } | undefined)?.stream ?? ''))
        await job.remove().catch(() => undefined);
    }
  } finally {
    await queue.close();
  }
}
