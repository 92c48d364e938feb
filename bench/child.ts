/**
 * Runs one Node method in a process of its own, so its peak RSS is its own:
 *   node bench/out/build/bench/child.js <method module> <context JSON>   (or bench/child.ts under tsx)
 * Prints one line `BENCH_RESULT {...}` with the timed milliseconds, the process's CPU time in them, rows
 * and peak RSS.
 */
import type { MethodContext, NodeMethod } from './method.ts';

const [modulePath, contextJson] = process.argv.slice(2);
if (!modulePath || !contextJson) throw new Error('usage: child.ts <method module> <context JSON>');
const method = (await import(modulePath)).default as NodeMethod;
const ctx = JSON.parse(contextJson) as MethodContext;
const rssBeforeKb = Math.round(process.memoryUsage().rss / 1024);
const cpuBefore = process.cpuUsage();
const start = performance.now();
const returned = await method.run(ctx);
const ms = performance.now() - start;
const cpu = process.cpuUsage(cpuBefore);
const report = typeof returned === 'number' ? { rows: returned } : returned;
const result = {
  ms,
  cpuMs: (cpu.user + cpu.system) / 1000,
  maxRssKb: process.resourceUsage().maxRSS,
  rssBeforeKb,
  ...report, // a method's own figures (queue: timed from the first enqueue, the workers' RSS) win
};
process.stdout.write(`BENCH_RESULT ${JSON.stringify(result)}\n`);
