import type { Command } from 'commander';
import { pino } from 'pino';
import { Worker } from '../../queue/worker.ts';
import { workerConfigSchema } from '../config.ts';
import { startOpsServer } from '../http-server.ts';
import { createMetrics } from '../metrics.ts';
import { attachWorkerMetrics } from '../worker-metrics.ts';
import {
  addSettings,
  CONNECTION_SETTINGS,
  configFrom,
  logLevel,
  runCommand,
  stopOnSignals,
  withDefaults,
} from './common.ts';
import { faultFromEnvironment } from './test-faults.ts';

/** Flag, environment variable and description of each worker setting (the compose test reads the names). */
export const WORKER_SETTINGS = {
  ...CONNECTION_SETTINGS,
  ...withDefaults(workerConfigSchema.shape, {
    concurrency: ['--concurrency <n>', 'WORKER_CONCURRENCY', 'streams worked on at once'],
    metricsPort: [
      '--metrics-port <port>',
      'METRICS_PORT',
      '/metrics, /healthz and /readyz port; 0 picks a free port, logged at start',
    ],
    metricsHost: ['--metrics-host <host>', 'METRICS_HOST', 'address the metrics server listens on'],
    poisonRetries: [
      '--poison-retries <n>',
      'POISON_RETRIES',
      'retries of a batch failing on its data before it is parked',
    ],
    poisonBackoffMs: [
      '--poison-backoff-ms <ms>',
      'POISON_BACKOFF_MS',
      'first backoff between those retries, doubled each time',
    ],
    lockDurationMs: [
      '--lock-duration-ms <ms>',
      'LOCK_DURATION_MS',
      "BullMQ job lock; a dead worker's job returns after it",
    ],
    stalledIntervalMs: [
      '--stalled-interval-ms <ms>',
      'STALLED_INTERVAL_MS',
      'how often stalled jobs are looked for',
    ],
    sweepIntervalMs: [
      '--sweep-interval-ms <ms>',
      'SWEEP_INTERVAL_MS',
      'how often streams with pending batches are kicked again',
    ],
    shutdownTimeoutMs: [
      '--shutdown-timeout-ms <ms>',
      'SHUTDOWN_TIMEOUT_MS',
      'on SIGTERM, how long current batches may finish',
    ],
    cancelBlockersAfterMs: [
      '--cancel-blockers-after-ms <ms>',
      'CANCEL_BLOCKERS_AFTER_MS',
      'cancel queries blocking a table swap after',
    ],
    terminateBlockersAfterMs: [
      '--terminate-blockers-after-ms <ms>',
      'TERMINATE_BLOCKERS_AFTER_MS',
      'terminate backends blocking a table swap after',
    ],
    coalesceMaxBatches: [
      '--coalesce-max-batches <n>',
      'COALESCE_MAX_BATCHES',
      'most pending batches of a stream applied in one transaction; 1 never coalesces',
    ],
    coalesceMaxRows: [
      '--coalesce-max-rows <n>',
      'COALESCE_MAX_ROWS',
      'most rows in one coalesced transaction',
    ],
    coalesceMaxBytes: [
      '--coalesce-max-bytes <n>',
      'COALESCE_MAX_BYTES',
      'most wire bytes in one coalesced transaction',
    ],
    ledgerRetentionDays: [
      '--ledger-retention-days <days>',
      'LEDGER_RETENTION_DAYS',
      "days a batch's row stays in the ledger bulk_ingest.batches; 0 keeps them forever",
    ],
  } as const),
};

export function registerWorkerCommand(program: Command): void {
  const command = program
    .command('worker')
    .description('Apply enqueued batches to PostgreSQL, in order and exactly once. Run as many as you like.');
  addSettings(command, WORKER_SETTINGS).action((flags: Record<string, unknown>) =>
    runCommand(async () => {
      const config = configFrom(workerConfigSchema, WORKER_SETTINGS, flags);
      const logger = pino({ level: logLevel() });
      const fault = faultFromEnvironment();
      // The settings that are Worker options go to it as they are (they have its names).
      const {
        redisUrl,
        metricsPort,
        metricsHost,
        cancelBlockersAfterMs,
        terminateBlockersAfterMs,
        ...options
      } = config;
      const worker = new Worker({
        ...options,
        redis: redisUrl,
        blockingBackends: {
          cancelAfterMs: cancelBlockersAfterMs,
          terminateAfterMs: terminateBlockersAfterMs,
        },
        logger,
        ...(fault ? { fault } : {}),
      });
      const metrics = createMetrics();
      const detachMetrics = attachWorkerMetrics(metrics, worker, { databaseUrl: config.databaseUrl });
      // Up before the worker: /healthz answers while it connects, /readyz says when it can work.
      const ops = await startOpsServer({
        port: metricsPort,
        host: metricsHost,
        registry: metrics.registry,
        readinessChecks: worker.readinessChecks,
      });
      logger.info({ port: ops.port, host: metricsHost }, 'ops server listening: /metrics /healthz /readyz');
      try {
        await worker.start();
      } catch (error) {
        await Promise.all([ops.close(), detachMetrics()]);
        throw error;
      }
      // The ops server stays up while batches finish, so health checks do not fail meanwhile.
      stopOnSignals(logger, 'stopping: no new jobs; finishing current batches', () =>
        worker.close().then(detachMetrics).then(ops.close),
      );
    }),
  );
}
