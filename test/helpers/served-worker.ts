/**
 * An in-process Worker served as the `worker` command serves one: its metrics attached, and
 * /metrics, /healthz and /readyz on 127.0.0.1 (a free port), for tests that scrape it.
 */
import type { WorkerOptions } from '../../src/index.ts';
import { startOpsServer } from '../../src/ops/http-server.ts';
import { createMetrics } from '../../src/ops/metrics.ts';
import { attachWorkerMetrics } from '../../src/ops/worker-metrics.ts';
import { DATABASE_URL } from './pg.ts';
import { inProcessWorker } from './queue.ts';

export interface ServedWorker {
  /** The ops server's port. */
  readonly port: number;
  /** Closes the ops server, detaches the metrics, closes the worker. */
  close(): Promise<void>;
}

/** Starts an `inProcessWorker(names, options)` behind its ops server. */
export async function startServedWorker(
  names: { queueName: string; prefix: string },
  options: WorkerOptions = {},
): Promise<ServedWorker> {
  const worker = inProcessWorker(names, options);
  const metrics = createMetrics();
  const detach = attachWorkerMetrics(metrics, worker, { databaseUrl: DATABASE_URL });
  const ops = await startOpsServer({
    port: 0,
    host: '127.0.0.1',
    registry: metrics.registry,
    readinessChecks: worker.readinessChecks,
  });
  await worker.start();
  return {
    port: ops.port,
    close: async () => {
      await ops.close();
      await detach();
      await worker.close();
    },
  };
}
