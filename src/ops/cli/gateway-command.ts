/**
 * `pg-bulk-ingest gateway`: the HTTP gateway (src/ops/gateway.ts) as a process. It refuses to
 * start without a bearer token unless `--local-only`, which also binds 127.0.0.1 only.
 */
import type { Command } from 'commander';
import pg from 'pg';
import { type Logger, pino } from 'pino';
import { collectDefaultMetrics, Registry } from 'prom-client';
import { z } from 'zod';
import { integer } from '../../ingest/parse-options.ts';
import { StreamAdmin } from '../../queue/admin.ts';
import { Producer } from '../../queue/producer.ts';
import { producerOptionsSchema } from '../../queue/producer-options.ts';
import { connectionConfigSchema, numberSetting } from '../config.ts';
import { gatewayLimitsSchema, startGateway } from '../gateway.ts';
import type { OpsServer } from '../http-server.ts';
import {
  addSettings,
  CONNECTION_SETTINGS,
  configFrom,
  logLevel,
  runCommand,
  stopOnSignals,
  withDefaults,
} from './common.ts';
import { BACKPRESSURE_SETTINGS, backpressureConfigShape, producerOptionsOf } from './producer-settings.ts';

const LOOPBACK = new Set(['127.0.0.1', '::1', 'localhost']);
const { backpressureTimeoutMs, redisTimeoutMs } = producerOptionsSchema.shape;
const limits = gatewayLimitsSchema.shape;

export const gatewayConfigSchema = connectionConfigSchema
  .extend({
    ...backpressureConfigShape,
    port: numberSetting(integer(0, 65535).default(8080)),
    host: z.string().min(1).optional(),
    token: z.string().min(16, 'must be at least 16 characters (e.g. `openssl rand -hex 32`)').optional(),
    maxBodyBytes: numberSetting(limits.maxBodyBytes),
    maxInflightBytes: numberSetting(limits.maxInflightBytes),
    maxRowBytes: numberSetting(limits.maxRowBytes),
    // The gateway's own defaults: a request is not held for room, nor for a Redis that is down.
    backpressureWaitMs: numberSetting(backpressureTimeoutMs.unwrap().default(0)),
    retryAfter: numberSetting(limits.retryAfterSeconds),
    redisTimeoutMs: numberSetting(redisTimeoutMs.unwrap().default(5000)),
    localOnly: z.boolean().default(false),
  })
  .superRefine((config, ctx) => {
    if (config.token === undefined && !config.localOnly) {
      ctx.addIssue({
        code: 'custom',
        path: ['token'],
        message:
          'is required: set GATEWAY_TOKEN, or pass --local-only to accept unauthenticated requests on 127.0.0.1 only',
      });
    }
    if (config.maxInflightBytes < config.maxBodyBytes) {
      ctx.addIssue({
        code: 'custom',
        path: ['maxInflightBytes'],
        message: `must be at least --max-body-bytes (${config.maxBodyBytes}), or a body of the largest size could never be accepted`,
      });
    }
    if (config.localOnly && config.host !== undefined && !LOOPBACK.has(config.host)) {
      ctx.addIssue({
        code: 'custom',
        path: ['host'],
        message: '--local-only listens on 127.0.0.1 only: drop --host or --local-only',
      });
    }
  });

export const GATEWAY_SETTINGS = {
  ...CONNECTION_SETTINGS,
  ...withDefaults(gatewayConfigSchema.shape, {
    port: [
      '--port <port>',
      'GATEWAY_PORT',
      'port for /v1/batches, /v1/streams and /metrics, /healthz, /readyz',
    ],
    host: [
      '--host <host>',
      'GATEWAY_HOST',
      'address to listen on (default 0.0.0.0; 127.0.0.1 with --local-only)',
    ],
    token: [
      '--token <token>',
      'GATEWAY_TOKEN',
      'bearer token clients must send, at least 16 characters (prefer the environment variable: flags show in ps)',
    ],
    maxBodyBytes: [
      '--max-body-bytes <n>',
      'GATEWAY_MAX_BODY_BYTES',
      'largest request body; larger ones get 413',
    ],
    maxInflightBytes: [
      '--max-inflight-bytes <n>',
      'GATEWAY_MAX_INFLIGHT_BYTES',
      'bytes of request bodies held at once; a body that does not fit gets 503 with Retry-After; at least --max-body-bytes',
    ],
    maxRowBytes: [
      '--max-row-bytes <n>',
      'GATEWAY_MAX_ROW_BYTES',
      'largest row (its JSON); larger ones get 413',
    ],
  } as const),
  ...BACKPRESSURE_SETTINGS,
  ...withDefaults(gatewayConfigSchema.shape, {
    backpressureWaitMs: [
      '--backpressure-wait-ms <ms>',
      'GATEWAY_BACKPRESSURE_WAIT_MS',
      'under backpressure, hold a request this long for room before answering 429',
    ],
    retryAfter: [
      '--retry-after <seconds>',
      'GATEWAY_RETRY_AFTER_SECONDS',
      'Retry-After sent with 429 and 503',
    ],
    redisTimeoutMs: [
      '--redis-timeout-ms <ms>',
      'GATEWAY_REDIS_TIMEOUT_MS',
      'answer 503 when Redis does not answer an enqueue within this time; 0 waits for Redis',
    ],
  } as const),
};

export type GatewayConfig = z.output<typeof gatewayConfigSchema>;

export interface GatewayProcess {
  readonly server: OpsServer;
  close(): Promise<void>;
}

/** Starts the gateway with its producer, admin and readiness checks; `registry` lets others add metrics. */
export async function runGateway(
  config: GatewayConfig,
  options: { registry?: Registry; logger?: Logger } = {},
): Promise<GatewayProcess> {
  const registry = options.registry ?? defaultRegistry();
  const logger = options.logger ?? pino({ level: logLevel() });
  const names = { queueName: config.queueName, prefix: config.prefix };
  const producer = new Producer({
    ...producerOptionsOf(config, config.backpressureWaitMs),
    redisTimeoutMs: config.redisTimeoutMs,
  });
  const admin = new StreamAdmin({ databaseUrl: config.databaseUrl, redis: config.redisUrl, ...names });
  const pool = new pg.Pool({ connectionString: config.databaseUrl, max: 1 });
  pool.on('error', (error) => logger.warn({ err: error }, 'idle PostgreSQL connection failed'));
  const host = config.host ?? (config.localOnly ? '127.0.0.1' : '0.0.0.0');
  const server = await startGateway({
    port: config.port,
    host,
    registry,
    readinessChecks: { postgres: () => pool.query('SELECT 1'), redis: () => producer.streamInfo('readyz') },
    producer,
    admin,
    token: config.token ?? null,
    maxBodyBytes: config.maxBodyBytes,
    maxInflightBytes: config.maxInflightBytes,
    maxRowBytes: config.maxRowBytes,
    retryAfterSeconds: config.retryAfter,
    logger,
  });
  logger.info(
    { url: `http://${host}:${server.port}`, auth: config.token ? 'bearer token' : 'none (local only)' },
    'gateway listening',
  );
  return {
    server,
    close: async () => {
      await server.close();
      await Promise.all([producer.close(), admin.close(), pool.end()]);
    },
  };
}

function defaultRegistry(): Registry {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry });
  return registry;
}

export function registerGatewayCommand(program: Command): void {
  const command = program
    .command('gateway')
    .description(
      'HTTP gateway: POST /v1/batches enqueues a batch (JSON, the batch format), GET /v1/streams/:stream shows its status; bearer-token auth',
    )
    .option('--local-only', 'no token needed: listen on 127.0.0.1 only');
  addSettings(command, GATEWAY_SETTINGS).action((flags: Record<string, unknown>) =>
    runCommand(async () => {
      const config = configFrom(gatewayConfigSchema, GATEWAY_SETTINGS, flags, {
        flagsOnly: { localOnly: '--local-only' },
        secrets: new Set(['token']),
      });
      const logger = pino({ level: logLevel() });
      const gateway = await runGateway(config, { logger });
      stopOnSignals(logger, 'stopping: finishing requests in flight', () => gateway.close());
    }),
  );
}
