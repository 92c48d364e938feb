/**
 * How fast `enqueue` reads a CSV file, without Redis or PostgreSQL: the bench's rows (bench/
 * generate-rows.ts) written as CSV, the payload a quoted JSON field with doubled quotes, a name
 * with a comma quoted, then read (a) into records only (src/ops/csv-records.ts) and (b) into
 * checked wire values (src/ops/file-rows.ts, what the CLI and producers/file-producer.ts enqueue).
 *
 *   node --import tsx bench/csv-read.ts              # 1,000,000 rows, median of 3
 *   CSV_ROWS=100000 CSV_RUNS=1 node --import tsx bench/csv-read.ts
 */
import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { open } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { csvRecords } from '../src/ops/csv-records.ts';
import { openInput, readFileRows } from '../src/ops/file-rows.ts';
import { benchTable, COLUMN_NAMES, generateRows } from './generate-rows.ts';

const ROWS = Number(process.env.CSV_ROWS ?? 1_000_000);
const RUNS = Number(process.env.CSV_RUNS ?? 3);

function csvField(text: string): string {
  return /[",\r\n]/.test(text) ? `"${text.replaceAll('"', '""')}"` : text;
}

async function writeCsv(path: string): Promise<void> {
  const file = await open(path, 'w');
  try {
    let chunk = `${COLUMN_NAMES.join(',')}\n`;
    for (const [id, at, name, amount, payload] of generateRows(1, 0, ROWS)) {
      const label = id % 10 === 0 ? `${name}, ${id}` : name; // every tenth name needs quoting
      chunk += `${id},${at.toISOString()},${csvField(label)},${amount},${csvField(JSON.stringify(payload))}\n`;
      if (chunk.length >= 1 << 20) {
        await file.write(chunk);
        chunk = '';
      }
    }
    await file.write(chunk);
  } finally {
    await file.close();
  }
}

/** Wall-clock and CPU seconds (CPU time is what to compare on a busy machine). */
async function timed(read: () => Promise<number>): Promise<{ seconds: number; cpu: number; rows: number }> {
  const start = process.hrtime.bigint();
  const cpuStart = process.cpuUsage();
  const rows = await read();
  const cpu = process.cpuUsage(cpuStart);
  return { seconds: Number(process.hrtime.bigint() - start) / 1e9, cpu: (cpu.user + cpu.system) / 1e6, rows };
}

const median = (values: number[]) =>
  [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)] as number;

const dir = mkdtempSync(join(tmpdir(), 'pgbi-csv-read-'));
try {
  const path = join(dir, 'rows.csv');
  await writeCsv(path);
  const size = statSync(path).size;
  const table = benchTable('bench_csv');
  const readers: Record<string, () => Promise<number>> = {
    records: async () => {
      let n = 0;
      for await (const _ of csvRecords(openInput(path), ',', path)) n++;
      return n - 1;
    },
    'checked rows': async () => {
      let n = 0;
      for await (const _ of readFileRows(openInput(path), { table, format: 'csv', source: path })) n++;
      return n;
    },
  };
  process.stdout.write(`${ROWS.toLocaleString('en')} rows, ${(size / 2 ** 20).toFixed(1)} MiB of CSV\n`);
  for (const [name, read] of Object.entries(readers)) {
    const runs: number[] = [];
    const cpus: number[] = [];
    for (let i = 0; i < RUNS; i++) {
      const { seconds, cpu, rows } = await timed(read);
      if (rows !== ROWS) throw new Error(`${name}: read ${rows} rows, expected ${ROWS}`);
      runs.push(seconds);
      cpus.push(cpu);
    }
    const s = median(runs);
    process.stdout.write(
      `${name.padEnd(13)} ${s.toFixed(2)} s (CPU ${median(cpus).toFixed(2)} s)  ${Math.round(ROWS / s).toLocaleString('en')} rows/s  ${(size / 2 ** 20 / s).toFixed(0)} MiB/s  (runs: ${runs.map((r) => r.toFixed(2)).join(', ')})\n`,
    );
  }
} finally {
  rmSync(dir, { recursive: true, force: true });
}
