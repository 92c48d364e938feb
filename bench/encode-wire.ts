/**
 * The Producer's encoding cost alone, without Redis: the bench rows through WireRowWriter (the
 * checks and the JSON text of each row). Reports CPU time per row.
 *   node --import tsx bench/encode-wire.ts [rows] [repeats]
 */
import { WireRowWriter } from '../src/queue/wire-row-writer.ts';
import { benchTable, generateRows } from './generate-rows.ts';

const rows = Number(process.argv[2] ?? 1_000_000);
const repeats = Number(process.argv[3] ?? 5);
const writer = new WireRowWriter(benchTable('bench'));
const data = [...generateRows(1, 0, rows)]; // generated once: only the encoding is timed

function once(): { ms: number; bytes: number } {
  let bytes = 0;
  const start = process.cpuUsage();
  for (let i = 0; i < data.length; i++) bytes += writer.write(data[i] as unknown[], 'Batch 1', i + 1).length;
  const cpu = process.cpuUsage(start);
  return { ms: (cpu.user + cpu.system) / 1000, bytes };
}

once(); // warm-up
const times: number[] = [];
for (let i = 0; i < repeats; i++) times.push(once().ms);
times.sort((a, b) => a - b);
const med = times[times.length >> 1] as number;
console.log(
  `WireRowWriter: CPU min ${(((times[0] as number) * 1e6) / rows).toFixed(0)} ns/row, median ${((med * 1e6) / rows).toFixed(0)} ns/row; runs ${times.map((x) => x.toFixed(0)).join(' ')} ms`,
);
