/**
 * `pg-bulk-ingest demo` (`npm run demo`): the whole system on localhost in about a minute. See
 * src/ops/demo/run-demo.ts. Ctrl-C stops the producer, stops the workers with SIGTERM and waits
 * for them; a second Ctrl-C kills them at once.
 */
import type { Command } from 'commander';
import { z } from 'zod';
import { PgBulkIngestError } from '../../errors.ts';
import { connectionConfigSchema, workerConfigSchema } from '../config.ts';
import { runDemo } from '../demo/run-demo.ts';
import { ProgressLine } from '../progress.ts';
import { killAllWorkerProcesses } from '../worker-processes.ts';
import { addSettings, CONNECTION_SETTINGS, configFrom, runCommand, withDefaults } from './common.ts';

export const demoConfigSchema = connectionConfigSchema.extend({
  schema: z
    .string()
    .min(1)
    .max(63)
    .regex(/^[a-z_][a-z0-9_]*$/, 'expected a lower-case identifier')
    .default('demo'),
  duration: z.coerce.number().positive().default(60),
  workers: z.coerce.number().int().min(1).max(16).default(2),
  metricsPort: workerConfigSchema.shape.metricsPort,
  batchesPerSecond: z.coerce.number().positive().max(1000).default(4),
  ordersPerBatch: z.coerce.number().int().min(1).max(100_000).default(100),
  seed: z.coerce.number().int().default(42),
  catchUpTimeout: z.coerce.number().min(0).default(60),
  producerOnly: z.boolean().default(false),
});

export const DEMO_SETTINGS = {
  ...CONNECTION_SETTINGS,
  ...withDefaults(demoConfigSchema.shape, {
    schema: ['--schema <name>', 'DEMO_SCHEMA', 'schema of the demo tables, dropped and recreated'],
    duration: ['--duration <seconds>', 'DEMO_DURATION', 'how long the producer runs'],
    workers: ['--workers <n>', 'DEMO_WORKERS', 'worker processes to start, unless --producer-only'],
    metricsPort: [
      '--metrics-port <port>',
      'DEMO_METRICS_PORT',
      'metrics port of the first worker, the next +1, ...; 0 lets each worker pick a free port',
    ],
    batchesPerSecond: [
      '--batches-per-second <n>',
      'DEMO_BATCHES_PER_SECOND',
      'batches per second on each of the two streams',
    ],
    ordersPerBatch: [
      '--orders-per-batch <n>',
      'DEMO_ORDERS_PER_BATCH',
      'new orders per batch; each batch also updates earlier orders and customers',
    ],
    seed: ['--seed <n>', 'DEMO_SEED', 'seed of the synthetic feed: the same seed gives the same rows'],
    catchUpTimeout: [
      '--catch-up-timeout <seconds>',
      'DEMO_CATCH_UP_TIMEOUT',
      'after producing, how long to wait for the workers to commit everything',
    ],
  } as const),
};

export function registerDemoCommand(program: Command): void {
  const command = program
    .command('demo')
    .description(
      'Start two workers and stream a synthetic orders feed (customers, orders, order events, with updates) into PostgreSQL for a minute, with live progress and a summary',
    )
    .option('--producer-only', 'only produce (the workers run elsewhere, e.g. as docker compose services)');
  addSettings(command, DEMO_SETTINGS).action((flags: Record<string, unknown>) =>
    runCommand(async () => {
      const parsed = configFrom(demoConfigSchema, DEMO_SETTINGS, flags, {
        flagsOnly: { producerOnly: '--producer-only' },
      });
      const config = {
        ...parsed,
        durationSeconds: parsed.duration,
        catchUpTimeoutSeconds: parsed.catchUpTimeout,
      };
      const controller = new AbortController();
      const progress = new ProgressLine({ plainIntervalMs: 5000 });
      let signals = 0;
      const onSignal = (signal: NodeJS.Signals) => {
        signals += 1;
        if (signals > 1) {
          killAllWorkerProcesses();
          process.exit(130);
        }
        progress.clear();
        process.stderr.write(
          `\n${signal}: stopping the producer and the workers (again to kill them at once)\n`,
        );
        controller.abort();
      };
      process.on('SIGINT', onSignal);
      process.on('SIGTERM', onSignal);
      const out = (text: string) => {
        progress.clear();
        process.stdout.write(text);
      };
      try {
        const result = await runDemo(config, { out, progress, signal: controller.signal });
        process.exitCode = result.interrupted ? 130 : result.ok ? 0 : 1;
      } catch (error) {
        if (error instanceof PgBulkIngestError) throw error;
        // A worker died, or a service went away mid-run: the message says which (no stack needed).
        process.stderr.write(`Demo failed: ${error instanceof Error ? error.message : String(error)}\n`);
        process.exitCode = 1;
      } finally {
        process.off('SIGINT', onSignal);
        process.off('SIGTERM', onSignal);
      }
    }),
  );
}
