/**
 * Top self-time functions of a V8 .cpuprofile (from `BENCH_CPU_PROF=1 npm run bench`):
 *   node --import tsx bench/profile-summary.ts bench/out/profiles/ingest-insert-1.cpuprofile [top]
 */
import { readFileSync } from 'node:fs';

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number; columnNumber: number };
  hitCount?: number;
  children?: number[];
}
interface Profile {
  nodes: ProfileNode[];
  startTime: number;
  endTime: number;
  samples: number[];
  timeDeltas: number[];
}

const [path, topArg] = process.argv.slice(2);
if (!path) throw new Error('usage: profile-summary.ts <file.cpuprofile> [top]');
const profile = JSON.parse(readFileSync(path, 'utf8')) as Profile;
const byId = new Map(profile.nodes.map((n) => [n.id, n]));
const selfUs = new Map<number, number>();
profile.samples.forEach((id, i) => {
  selfUs.set(id, (selfUs.get(id) ?? 0) + (profile.timeDeltas[i] ?? 0));
});

const totals = new Map<string, number>();
for (const [id, us] of selfUs) {
  const { functionName, url, lineNumber, columnNumber } = (byId.get(id) as ProfileNode).callFrame;
  const file = url.replace(/^.*\/(node_modules\/|src\/|bench\/)/, '$1');
  const key =
    `${functionName || '(anonymous)'} ${file ? `${file}:${lineNumber + 1}:${columnNumber + 1}` : ''}`.trim();
  totals.set(key, (totals.get(key) ?? 0) + us);
}
const all = [...totals.values()].reduce((a, b) => a + b, 0);
console.log(`${path}: ${(all / 1e6).toFixed(2)} s sampled`);
for (const [key, us] of [...totals].sort((a, b) => b[1] - a[1]).slice(0, Number(topArg ?? 25))) {
  console.log(
    `${((100 * us) / all).toFixed(1).padStart(5)}%  ${(us / 1000).toFixed(0).padStart(6)} ms  ${key}`,
  );
}
