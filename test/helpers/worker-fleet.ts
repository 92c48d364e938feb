/**
 * The worker processes of one test (started and stopped by src/ops/worker-processes.ts): on the
 * test's queue with short intervals, so that a killed worker's kick comes back within seconds;
 * restarted alike when they die; all killed at the end; their output kept for diagnostics.
 */
import { WorkerProcess } from '../../src/ops/worker-processes.ts';
import { childEnv, connectionEnv } from './cli.ts';
import type { Connection } from './queue.ts';

/** Short intervals so a killed worker's kick comes back within seconds. */
export const FAST_WORKER_ENV: Readonly<Record<string, string>> = {
  METRICS_PORT: '0',
  LOG_LEVEL: 'warn',
  STALLED_INTERVAL_MS: '2000',
  LOCK_DURATION_MS: '2000',
  SWEEP_INTERVAL_MS: '500',
  SHUTDOWN_TIMEOUT_MS: '5000',
  WORKER_CONCURRENCY: '2',
};

/** Its label, pid, whether and how it exited, and the end of its output. */
export function describeWorker(w: WorkerProcess): string {
  const status = w.exit ? `exited code=${w.exit.code} signal=${w.exit.signal}` : 'running';
  return `--- ${w.label} pid ${w.pid} (${status}) ---\n${w.output.slice(-4000)}`;
}

export class WorkerFleet {
  readonly connection: Connection;
  /** Every process ever started, dead ones included. */
  readonly all: WorkerProcess[] = [];

  constructor(connection: Connection) {
    this.connection = connection;
  }

  /** A worker on the test's queue with FAST_WORKER_ENV, then `env` (undefined: removed). */
  start(
    env: Record<string, string | undefined> = {},
    label = `worker-${this.all.length + 1}`,
  ): WorkerProcess {
    return this.#add(
      new WorkerProcess({
        env: childEnv({ ...connectionEnv(this.connection), ...FAST_WORKER_ENV, ...env }),
        output: 'keep',
        label,
      }),
    );
  }

  #add(worker: WorkerProcess): WorkerProcess {
    this.all.push(worker);
    return worker;
  }

  get alive(): WorkerProcess[] {
    return this.all.filter((w) => w.alive);
  }

  /**
   * Restarts, alike, every process that dies (killed or crashed) until `stop()`, which resolves
   * to the processes that died meanwhile.
   */
  supervise(intervalMs = 200): { stop: () => Promise<WorkerProcess[]> } {
    const handled = new Set(this.all.filter((w) => !w.alive));
    const died: WorkerProcess[] = [];
    let stopped = false;
    const loop = (async () => {
      while (!stopped) {
        await new Promise((r) => setTimeout(r, intervalMs));
        for (const w of this.all.filter((p) => !p.alive && !handled.has(p))) {
          handled.add(w);
          died.push(w);
          if (!stopped) this.#add(new WorkerProcess(w.options));
        }
      }
    })();
    return {
      stop: async () => {
        stopped = true;
        await loop;
        return died;
      },
    };
  }

  async killAll(): Promise<void> {
    await Promise.all(this.all.map((w) => w.kill()));
  }

  diagnostics(): string {
    return this.all.map(describeWorker).join('\n');
  }

  /** Lines some process printed matching `pattern` (pino JSON lines). */
  logLines(pattern: RegExp): string[] {
    return this.all.flatMap((w) => w.output.split('\n').filter((line) => pattern.test(line)));
  }
}
