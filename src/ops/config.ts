/**
 * Configuration from flags and environment, validated with zod at start-up so a typo fails at
 * once with the name of the setting, where it came from, and what was expected.
 */
import { z } from 'zod';
import { PgBulkIngestError } from '../errors.ts';
import { DEFAULT_LEDGER_RETENTION_DAYS } from '../queue/ledger-retention.ts';
import {
  DEFAULT_DATABASE_URL,
  DEFAULT_PREFIX,
  DEFAULT_QUEUE_NAME,
  DEFAULT_REDIS_URL,
} from '../queue/queue-config.ts';

const url = (protocols: string[]) =>
  z.string().refine(
    (value) => {
      try {
        return protocols.includes(new URL(value).protocol);
      } catch {
        return false;
      }
    },
    `expected a ${protocols.map((p) => `${p}//`).join(' or ')} URL`,
  );

export const connectionConfigSchema = z.object({
  databaseUrl: url(['postgres:', 'postgresql:']).default(DEFAULT_DATABASE_URL),
  redisUrl: url(['redis:', 'rediss:']).default(DEFAULT_REDIS_URL),
  queueName: z.string().min(1).default(DEFAULT_QUEUE_NAME),
  prefix: z
    .string()
    .min(1)
    .regex(/^[^{}]+$/, 'no "{" or "}" (they are Redis Cluster hash tags)')
    .default(DEFAULT_PREFIX),
});

const count = (min: number, max: number) => z.coerce.number().int().min(min).max(max);
const millis = z.coerce.number().int().min(0);

export const workerConfigSchema = connectionConfigSchema.extend({
  concurrency: count(1, 256).default(2),
  metricsPort: count(0, 65535).default(9464),
  metricsHost: z.string().default('0.0.0.0'),
  poisonRetries: count(0, 100).default(3),
  poisonBackoffMs: millis.default(1000),
  lockDurationMs: millis.default(30_000),
  stalledIntervalMs: millis.default(30_000),
  sweepIntervalMs: count(10, 3_600_000).default(5000),
  shutdownTimeoutMs: millis.default(30_000),
  cancelBlockersAfterMs: millis.default(300_000),
  terminateBlockersAfterMs: millis.default(310_000),
  coalesceMaxBatches: count(1, 100_000).default(200),
  coalesceMaxRows: count(1, 1_000_000_000).default(200_000),
  coalesceMaxBytes: count(1, 2 ** 40).default(32 * 1024 * 1024),
  ledgerRetentionDays: count(0, 36_500).default(DEFAULT_LEDGER_RETENTION_DAYS),
});

export type ConnectionConfig = z.output<typeof connectionConfigSchema>;
export type WorkerConfig = z.output<typeof workerConfigSchema>;

/** Where each setting comes from, for error messages: `--concurrency / WORKER_CONCURRENCY`. */
export type SettingSources = Readonly<Record<string, string>>;

/**
 * Validates settings; an error names each bad setting, where it comes from, and the value given,
 * except for the `secrets` (a token must not reach a terminal or a log, even a wrong one).
 */
/** A URL-like setting as it may be shown: its password, if any, masked. */
function withoutPassword(value: unknown): unknown {
  if (typeof value !== 'string') return value;
  return value.replace(/^([a-z][a-z0-9+.-]*:\/\/[^:/@\s]*:)[^@\s]*@/i, '$1***@');
}

export function parseConfig<S extends z.ZodType>(
  schema: S,
  input: Record<string, unknown>,
  sources: SettingSources,
  secrets: ReadonlySet<string> = new Set(),
): z.output<S> {
  // Unset values must not shadow defaults: drop undefined and empty strings.
  const present = Object.fromEntries(Object.entries(input).filter(([, v]) => v !== undefined && v !== ''));
  const result = schema.safeParse(present);
  if (result.success) return result.data;
  const problems = result.error.issues.map((issue) => {
    const key = String(issue.path[0] ?? '');
    const value = present[key];
    const got =
      value === undefined || secrets.has(key) ? '' : `, got ${JSON.stringify(withoutPassword(value))}`;
    return `  ${sources[key] ?? key}: ${issue.message}${got}`;
  });
  throw new PgBulkIngestError('INVALID_CONFIG', `Invalid configuration:\n${problems.join('\n')}`);
}
