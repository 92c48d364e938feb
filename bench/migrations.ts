/**
 * `npm run bench:migrations`: what a migration costs on a table of 1M and 5M rows (bigint
 * primary key and two more indexes), while another session runs `SELECT count(*)` in a loop.
 *
 *   (a) a nullable column added at the end    in place (ALTER under lock_timeout)
 *   (b) a varchar widened                     in place
 *   (c) integer → bigint                      rebuilt and swapped
 *
 * Each migration is one `ingest()` of a one-row batch with the new definition; wall time is that
 * call. The reader's longest query during the migration, against its median before it, says how
 * long readers were held up. Targets: (a) and (b) under 1 s at both sizes.
 *
 *   BENCH_MIGRATION_ROWS   sizes, default 1000000,5000000
 *   DATABASE_URL           default postgres://postgres@127.0.0.1:5432/test
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import pg from 'pg';
import { defineTable, ingest, type TableDefinitionInput } from '../src/index.ts';
import { runIngest } from '../src/ingest/ingest.ts';
import type { BatchReport } from '../src/ingest/ingest-batch.ts';

const databaseUrl = process.env.DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/test';
const sizes = (process.env.BENCH_MIGRATION_ROWS ?? '1000000,5000000').split(',').map(Number);
const TARGET_MS = 1000;

type Definition = TableDefinitionInput['columns'];

const id = { name: 'id', type: 'bigint', primaryKey: true } as const;
const name32 = { name: 'name', type: 'varchar(32)', index: true } as const;
const name64 = { name: 'name', type: 'varchar(64)', index: true } as const;
const nInt = { name: 'n', type: 'integer', index: true } as const;
const nBig = { name: 'n', type: 'bigint', index: true } as const;
const payload = { name: 'payload', type: 'text' } as const;
const extra = { name: 'extra', type: 'text' } as const;

const base: Definition = [id, name32, nInt, payload];
const steps: { id: string; label: string; columns: Definition }[] = [
  { id: 'a', label: 'add nullable column', columns: [id, name32, nInt, payload, extra] },
  { id: 'b', label: 'widen varchar(32) → varchar(64)', columns: [id, name64, nInt, payload, extra] },
  { id: 'c', label: 'integer → bigint', columns: [id, name64, nBig, payload, extra] },
];

interface Result {
  rows: number;
  step: string;
  label: string;
  path: string;
  wallMs: number;
  lockWaitMs: number;
  lockAttempts: number;
  readerBaselineMs: number;
  readerLongestMs: number;
  readerBlockedMs: number;
}

/** `SELECT count(*)` in a loop on its own connection, recording when each query ran. */
class Reader {
  readonly #client = new pg.Client({ connectionString: databaseUrl, application_name: 'bench reader' });
  readonly queries: { start: number; ms: number }[] = [];
  #running = true;
  #loop: Promise<void> = Promise.resolve();

  async start(table: string): Promise<void> {
    await this.#client.connect();
    this.#loop = (async () => {
      while (this.#running) {
        const start = performance.now();
        await this.#client.query(`SELECT count(*) FROM ${table}`);
        this.queries.push({ start, ms: performance.now() - start });
      }
    })();
  }

  /** Median before `from`, longest overlapping [from, to]. */
  window(from: number, to: number): { baseline: number; longest: number } {
    const before = this.queries
      .filter((q) => q.start + q.ms < from)
      .slice(-20)
      .map((q) => q.ms)
      .sort((x, y) => x - y);
    const during = this.queries.filter((q) => q.start < to && q.start + q.ms > from).map((q) => q.ms);
    return { baseline: before[Math.floor(before.length / 2)] ?? 0, longest: Math.max(0, ...during) };
  }

  async stop(): Promise<void> {
    this.#running = false;
    await this.#loop;
    await this.#client.end();
  }
}

async function benchSize(client: pg.Client, rows: number): Promise<Result[]> {
  const schema = `bench_migrations_${process.pid}_${rows}`;
  const table = `"${schema}".t`;
  const define = (columns: Definition) => defineTable({ schema, name: 't', columns });
  await client.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
  const setupStart = performance.now();
  await ingest(client, [define(base)], () => []);
  await client.query(
    `INSERT INTO ${table} SELECT g, 'name-' || g, g, md5(g::text) FROM generate_series(1, ${rows}) AS g`,
  );
  await client.query(`VACUUM ANALYZE ${table}`);
  console.error(`${rows} rows set up in ${((performance.now() - setupStart) / 1000).toFixed(1)} s`);
  const reader = new Reader();
  await reader.start(table);
  const results: Result[] = [];
  try {
    for (const [i, step] of steps.entries()) {
      await client.query('CHECKPOINT');
      await new Promise((r) => setTimeout(r, 1500)); // a baseline for the reader
      const target = define(step.columns);
      const values = [rows + i + 1, 'new', i, 'p', 'x'];
      let report: BatchReport | undefined;
      const start = performance.now();
      await runIngest(
        client,
        [target],
        () => [[String(i), null, [[target, values]]]],
        {},
        undefined,
        (r) => {
          report = r;
        },
      );
      const end = performance.now();
      await new Promise((r) => setTimeout(r, 300));
      const { baseline, longest } = reader.window(start, end);
      const migration = report?.migrations[0];
      results.push({
        rows,
        step: step.id,
        label: step.label,
        path: migration?.path ?? 'none',
        wallMs: end - start,
        lockWaitMs: migration?.lockWaitMs ?? 0,
        lockAttempts: migration?.lockAttempts ?? 0,
        readerBaselineMs: baseline,
        readerLongestMs: longest,
        readerBlockedMs: Math.max(0, longest - baseline),
      });
      console.error(JSON.stringify(results.at(-1)));
    }
  } finally {
    await reader.stop();
    await client.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
  }
  return results;
}

const client = new pg.Client({ connectionString: databaseUrl, application_name: 'bench migrations' });
await client.connect();
const results: Result[] = [];
try {
  for (const rows of sizes) results.push(...(await benchSize(client, rows)));
} finally {
  await client.end();
}
const ms = (n: number) => `${Math.round(n)} ms`;
console.log(
  '| rows | change | path | wall | ALTER lock wait (attempts) | reader median | reader longest | reader held up |',
);
console.log('| ---: | --- | --- | ---: | ---: | ---: | ---: | ---: |');
for (const r of results) {
  console.log(
    `| ${r.rows.toLocaleString('en')} | (${r.step}) ${r.label} | ${r.path} | ${ms(r.wallMs)} | ${ms(r.lockWaitMs)} (${r.lockAttempts}) | ${ms(r.readerBaselineMs)} | ${ms(r.readerLongestMs)} | ${ms(r.readerBlockedMs)} |`,
  );
}
for (const r of results.filter((x) => x.step !== 'c'))
  console.log(
    `target (${r.step}) < 1 s at ${r.rows.toLocaleString('en')} rows: ${r.wallMs < TARGET_MS ? 'met' : 'MISSED'}`,
  );
mkdirSync('bench/out', { recursive: true });
writeFileSync('bench/out/migrations.json', `${JSON.stringify(results, null, 2)}\n`);
