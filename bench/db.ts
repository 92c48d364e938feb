/** Database helpers shared by the methods' untimed set-up and by run.ts. */
import { spawn } from 'node:child_process';
import pg from 'pg';
import { ingest } from '../src/index.ts';
import { benchTable, COLUMN_NAMES, TABLE_NAME } from './generate-rows.ts';
import type { MethodContext } from './method.ts';

export async function withClient<T>(databaseUrl: string, fn: (client: pg.Client) => Promise<T>): Promise<T> {
  const client = new pg.Client({ connectionString: databaseUrl });
  await client.connect();
  try {
    return await fn(client);
  } finally {
    await client.end();
  }
}

export function quoteIdent(name: string): string {
  return `"${name.replaceAll('"', '""')}"`;
}

export function tableOf(ctx: Pick<MethodContext, 'schema'>): string {
  return `${quoteIdent(ctx.schema)}.${quoteIdent(TABLE_NAME)}`;
}

/**
 * The empty table, created by `ingest()` itself with no batches, so its shape is exactly the
 * one `ingest()` expects (no migration in the timed run) and the same for every method.
 */
export async function createEmptyTable(ctx: MethodContext): Promise<void> {
  await withClient(ctx.databaseUrl, (client) => ingest(client, [benchTable(ctx.schema)], () => []));
}

/** The table holding every key of the run (other values): an upsert then conflicts on all rows. */
export async function createPrefilledTable(ctx: MethodContext): Promise<void> {
  await createEmptyTable(ctx);
  await psql(ctx.databaseUrl, [
    '-c',
    `\\copy ${tableOf(ctx)} (${COLUMN_NAMES.join(', ')}) FROM PROGRAM 'head -n ${ctx.rows} ${ctx.prefillFile}'`,
  ]);
  await withClient(ctx.databaseUrl, (client) => client.query(`VACUUM ANALYZE ${tableOf(ctx)}`));
}

export function psqlArgs(databaseUrl: string, args: string[]): string[] {
  return ['-X', '-q', '-v', 'ON_ERROR_STOP=1', '-d', databaseUrl, ...args];
}

export function psql(databaseUrl: string, args: string[]): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn('psql', psqlArgs(databaseUrl, args), { stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (d) => {
      stderr += d;
    });
    child.on('error', reject);
    child.on('close', (code) =>
      code === 0 ? resolve() : reject(new Error(`psql exited with ${code}: ${stderr}`)),
    );
  });
}
