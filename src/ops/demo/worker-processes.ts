/**
 * The demo's worker child processes: `pg-bulk-ingest worker`, started with the same Node (and,
 * when running from the TypeScript sources, the same tsx loader), each logging to its own file.
 * Every child is tracked until it exits, so that nothing outlives the demo: a clean stop sends
 * SIGTERM and waits; an emergency (second Ctrl-C, a crash) sends SIGKILL.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { closeSync, mkdirSync, openSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { NODE_FLAGS } from '../node-flags.ts';

export interface WorkerProcess {
  readonly index: number;
  readonly child: ChildProcess;
  readonly logFile: string;
  /** The port it was given; null: 0, a free port of its choosing (see metricsPortOf). */
  readonly metricsPort: number | null;
  /** Resolves with the exit code (or the signal's name) when the process has exited. */
  readonly exited: Promise<number | string>;
}

const live = new Set<ChildProcess>();
process.once('exit', () => {
  for (const child of live) child.kill('SIGKILL');
});

/** `node <NODE_FLAGS> [--import tsx] <main> worker`, whether this runs from src (TypeScript) or dist. */
export function workerCommand(): { command: string; args: string[] } {
  const fromSources = import.meta.url.endsWith('.ts');
  const main = fileURLToPath(new URL(`../cli/main.${fromSources ? 'ts' : 'js'}`, import.meta.url));
  const loader = fromSources ? ['--import', import.meta.resolve('tsx')] : [];
  return { command: process.execPath, args: [...NODE_FLAGS, ...loader, main, 'worker'] };
}

/**
 * Starts `count` workers; worker i gets METRICS_PORT firstMetricsPort + i (0: each picks a free one),
 * and logs to <tmp>/pg-bulk-ingest-demo/<name>/worker-<i>.log.
 */
export function startWorkers(
  count: number,
  env: Record<string, string>,
  firstMetricsPort: number,
  name: string,
): WorkerProcess[] {
  const { command, args } = workerCommand();
  const logDir = join(tmpdir(), 'pg-bulk-ingest-demo', name);
  mkdirSync(logDir, { recursive: true });
  return Array.from({ length: count }, (_, index) => {
    const metricsPort = firstMetricsPort === 0 ? null : firstMetricsPort + index;
    const logFile = join(logDir, `worker-${index + 1}.log`);
    const fd = openSync(logFile, 'w');
    const child = spawn(command, args, {
      env: { ...process.env, ...env, METRICS_PORT: String(metricsPort ?? 0) },
      stdio: ['ignore', fd, fd],
    });
    closeSync(fd); // the child has its own copy
    live.add(child);
    const exited = new Promise<number | string>((resolve) => {
      child.once('exit', (code, signal) => {
        live.delete(child);
        resolve(code ?? signal ?? 'unknown');
      });
    });
    return { index, child, logFile, metricsPort, exited };
  });
}

/** Waits until every worker logged that it started; throws with the log's tail if one exits first. */
export async function waitUntilStarted(
  workers: readonly WorkerProcess[],
  timeoutMs: number,
  signal?: AbortSignal,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  const pending = new Set(workers);
  while (pending.size > 0) {
    for (const worker of pending) {
      if (worker.child.exitCode !== null || worker.child.signalCode !== null)
        throw new Error(`Worker ${worker.index + 1} exited while starting:\n${logTail(worker)}`);
      if (readLog(worker).includes('"worker started"')) pending.delete(worker);
    }
    if (signal?.aborted) return;
    const late = [...pending][0];
    if (late && Date.now() > deadline)
      throw new Error(
        `Worker ${late.index + 1} did not start within ${timeoutMs / 1000} s:\n${logTail(late)}`,
      );
    if (pending.size > 0) await sleep(100);
  }
}

/** SIGTERM to each running worker (a graceful stop: current batches finish), then waits; SIGKILL after `timeoutMs`. */
export async function stopWorkers(workers: readonly WorkerProcess[], timeoutMs: number): Promise<void> {
  for (const worker of workers) if (live.has(worker.child)) worker.child.kill('SIGTERM');
  const all = Promise.all(workers.map((w) => w.exited));
  const timer = sleep(timeoutMs, 'timeout' as const, { ref: false });
  if ((await Promise.race([all, timer])) === 'timeout') {
    killWorkersNow();
    await all;
  }
}

/** Emergency stop: SIGKILL to every worker still running. */
export function killWorkersNow(): void {
  for (const child of live) child.kill('SIGKILL');
}

/** The metrics port the worker logged (it may have picked a free one), else the one it was given. */
export function metricsPortOf(worker: WorkerProcess): number | null {
  const logged = /"port":(\d+)[^\n]*"msg":"ops server listening/.exec(readLog(worker))?.[1];
  return logged ? Number(logged) : worker.metricsPort;
}

/** The last lines of a worker's log, for error messages. */
export function logTail(worker: WorkerProcess | undefined, lines = 15): string {
  if (!worker) return '';
  return readLog(worker).trimEnd().split('\n').slice(-lines).join('\n');
}

function readLog(worker: WorkerProcess): string {
  try {
    return readFileSync(worker.logFile, 'utf8');
  } catch {
    return '';
  }
}
