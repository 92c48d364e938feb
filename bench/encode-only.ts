/**
 * The library's Node-side cost alone, without PostgreSQL: the generated rows go through
 * BatchRows and TableWriter (as in `ingest()`), and each COPY chunk is turned into a Buffer
 * (as the stream to the socket does). Used to measure encoding changes on a busy machine,
 * where wall-clock runs against the database are noisy. Reports CPU time (user + system).
 *   node --import tsx bench/encode-only.ts [rows] [repeats]
 */

import type { Row } from '../src/index.ts';
import { BatchRows } from '../src/ingest/batch-rows.ts';
import { TableWriter } from '../src/ingest/table-writer.ts';
import { type BenchRow, benchTable, generateRows } from './generate-rows.ts';

const rows = Number(process.argv[2] ?? 1_000_000);
const repeats = Number(process.argv[3] ?? 5);
const table = benchTable('bench');

function* tagged(values: Iterable<BenchRow>): Generator<Row> {
  for (const v of values) yield [table, v];
}

async function once(ordinal: boolean): Promise<{ ms: number; bytes: number }> {
  const writer = new TableWriter(table, '"bench"."rows"', ordinal ? '_pgbi_row' : undefined);
  let bytes = 0;
  const start = process.cpuUsage();
  await new BatchRows(tagged(generateRows(1, 0, rows)), new Map([[table, writer]]), 10_000).copyAll(
    async (_w, chunks) => {
      for await (const chunk of chunks) bytes += Buffer.from(chunk).length;
    },
  );
  const cpu = process.cpuUsage(start);
  return { ms: (cpu.user + cpu.system) / 1000, bytes };
}

const t = performance.now();
let n = 0;
for (const r of generateRows(1, 0, rows)) n += r[0];
const generateMs = performance.now() - t;
await once(false); // warm-up: let the JIT settle before measuring
for (const ordinal of [false, true]) {
  const times: number[] = [];
  let bytes = 0;
  for (let i = 0; i < repeats; i++) {
    const r = await once(ordinal);
    times.push(r.ms);
    bytes = r.bytes;
  }
  times.sort((a, b) => a - b);
  const med = times[times.length >> 1] as number;
  const min = times[0] as number;
  console.log(
    `${ordinal ? 'staging (ordinal)' : 'plain'}: CPU min ${((min * 1e6) / rows).toFixed(0)} ns/row, median ${((med * 1e6) / rows).toFixed(0)} ns/row ` +
      `(generation alone ${((generateMs * 1e6) / rows).toFixed(0)} ns/row), ${(bytes / 2 ** 20).toFixed(0)} MiB; runs ${times.map((x) => x.toFixed(0)).join(' ')}`,
  );
}
void n;
