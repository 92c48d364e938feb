/**
 * `npm run bench:bad-rows`: what isolating bad rows costs under BadRows.QUARANTINE
 * (docs/under-the-hood.md, "Bad rows"). One ingest() of a 100,000-row batch into an existing
 * table (bigint key, timestamptz, NOT NULL text, integer), timed from the call to its return:
 *
 *   FAIL, clean                     today's cost, the baseline
 *   QUARANTINE, clean               the savepoint and the rows kept in memory
 *   QUARANTINE, 3 bad (insert)      a bad timestamp, a NULL label, a duplicate key; Upsert.OFF
 *   QUARANTINE, 3 bad (upsert)      the same, upsert through staging, plus a CHECK the merge refuses
 *
 * Each case runs BENCH_REPEATS times (default 5) on a fresh table; the median is printed.
 *
 *   BENCH_BAD_ROWS_ROWS   default 100000
 *   DATABASE_URL          default postgres://postgres@127.0.0.1:5432/test
 */
import { randomBytes } from 'node:crypto';
import pg from 'pg';
import {
  BadRows,
  defineTable,
  type IngestOptions,
  type IngestTable,
  type Row,
  Upsert,
} from '../src/index.ts';
import { runIngest } from '../src/ingest/ingest.ts';
import type { BatchReport } from '../src/ingest/ingest-batch.ts';

const databaseUrl = process.env.DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/test';
const ROWS = Number(process.env.BENCH_BAD_ROWS_ROWS ?? 100_000);
const REPEATS = Number(process.env.BENCH_REPEATS ?? 5);

const tableIn = (schema: string) =>
  defineTable({
    schema,
    name: 'events',
    columns: [
      { name: 'id', type: 'bigint', primaryKey: true },
      { name: 'at', type: 'timestamptz' },
      { name: 'label', type: 'text', nullable: false },
      { name: 'n', type: 'integer' },
    ],
  });

function rows(table: IngestTable, bad: boolean, check: boolean): Row[] {
  const at = new Date(0);
  return Array.from({ length: ROWS }, (_, i): Row => {
    const id = i + 1;
    if (bad && id === Math.floor(ROWS * 0.1)) return [table, [id, 'not a time', 'x', 1]];
    if (bad && id === Math.floor(ROWS * 0.5)) return [table, [id, at, null, 1]];
    if (bad && !check && id === Math.floor(ROWS * 0.9)) return [table, [10, at, 'duplicate', 1]];
    if (bad && check && id === Math.floor(ROWS * 0.9)) return [table, [id, at, 'refused by the check', -1]];
    return [table, [id, at, `row number ${id}`, id]];
  });
}

interface Case {
  readonly label: string;
  readonly options: IngestOptions;
  readonly bad: boolean;
  readonly check: boolean;
}

const cases: Case[] = [
  { label: 'FAIL, clean', options: { upsert: Upsert.OFF }, bad: false, check: false },
  {
    label: 'QUARANTINE, clean',
    options: { upsert: Upsert.OFF, badRows: BadRows.QUARANTINE },
    bad: false,
    check: false,
  },
  {
    label: 'QUARANTINE, 3 bad (insert)',
    options: { upsert: Upsert.OFF, badRows: BadRows.QUARANTINE },
    bad: true,
    check: false,
  },
  { label: 'FAIL, clean (upsert)', options: {}, bad: false, check: true },
  {
    label: 'QUARANTINE, 3 bad (upsert)',
    options: { badRows: BadRows.QUARANTINE },
    bad: true,
    check: true,
  },
];

async function once(client: pg.Client, c: Case): Promise<{ ms: number; report: BatchReport }> {
  const schema = `bench_bad_rows_${randomBytes(4).toString('hex')}`;
  const table = tableIn(schema);
  try {
    await runIngest(client, [table], () => [], c.options);
    await client.query(`ALTER TABLE "${schema}".events ADD CHECK (n >= 0)`);
    const batch = rows(table, c.bad, c.check);
    let report: BatchReport | undefined;
    const start = performance.now();
    await runIngest(
      client,
      [table],
      () => [['h', null, batch]],
      c.options,
      undefined,
      (r) => {
        report = r;
      },
    );
    return { ms: performance.now() - start, report: report as BatchReport };
  } finally {
    await client.query(`DROP SCHEMA "${schema}" CASCADE`);
    await client
      .query(`DELETE FROM bulk_ingest.rejected_rows WHERE stream = $1`, [`${schema}.events`])
      .catch(() => undefined);
  }
}

const client = new pg.Client({ connectionString: databaseUrl });
await client.connect();
try {
  const baseline: Record<string, number> = {};
  console.log(`${ROWS} rows per batch, median of ${REPEATS}`);
  for (const c of cases) {
    const runs: { ms: number; report: BatchReport }[] = [];
    for (let i = 0; i < REPEATS; i++) runs.push(await once(client, c));
    runs.sort((a, b) => a.ms - b.ms);
    const median = runs[Math.floor(runs.length / 2)] as { ms: number; report: BatchReport };
    const base = c.check ? baseline['FAIL, clean (upsert)'] : baseline['FAIL, clean'];
    if (!c.bad) baseline[c.label] = median.ms;
    const ratio = base ? ` (${(median.ms / base).toFixed(2)}× clean FAIL)` : '';
    console.log(
      `${c.label.padEnd(30)} ${median.ms.toFixed(0).padStart(6)} ms${ratio}; rejected ${median.report.rejectedRows}; isolate ${median.report.phaseMs.isolate.toFixed(0)} ms, copy ${median.report.phaseMs.copy.toFixed(0)} ms, merge ${median.report.phaseMs.merge.toFixed(0)} ms`,
    );
  }
} finally {
  await client.end();
}
