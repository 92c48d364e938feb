/**
 * The demo's workers, started and stopped as src/ops/worker-processes.ts does it: worker i gets
 * METRICS_PORT firstMetricsPort + i (0: each picks a free one, which it logs), and logs to
 * <tmp>/pg-bulk-ingest-demo/<name>/worker-<i>.log, which the summary names.
 */
import { mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { WorkerProcess } from '../worker-processes.ts';

export class DemoWorker extends WorkerProcess {
  readonly index: number;
  readonly logFile: string;
  /** The port it was given; null: 0, a free port of its choosing (see metricsPort()). */
  readonly givenMetricsPort: number | null;

  constructor(index: number, env: Record<string, string>, givenMetricsPort: number | null, logFile: string) {
    super({
      env: { ...process.env, ...env, METRICS_PORT: String(givenMetricsPort ?? 0) },
      output: { file: logFile },
      label: `Worker ${index + 1}`,
    });
    this.index = index;
    this.logFile = logFile;
    this.givenMetricsPort = givenMetricsPort;
  }

  /** The metrics port it logged (it may have picked a free one), else the one it was given. */
  metricsPort(): number | null {
    const logged = /"port":(\d+)[^\n]*"msg":"ops server listening/.exec(this.output)?.[1];
    return logged ? Number(logged) : this.givenMetricsPort;
  }
}

export function startWorkers(
  count: number,
  env: Record<string, string>,
  firstMetricsPort: number,
  name: string,
): DemoWorker[] {
  const logDir = join(tmpdir(), 'pg-bulk-ingest-demo', name);
  mkdirSync(logDir, { recursive: true });
  return Array.from(
    { length: count },
    (_, index) =>
      new DemoWorker(
        index,
        env,
        firstMetricsPort === 0 ? null : firstMetricsPort + index,
        join(logDir, `worker-${index + 1}.log`),
      ),
  );
}
