/**
 * Configuration from flags and environment, validated with zod at start-up so a typo fails at
 * once with the name of the setting, where it came from, and what was expected. A setting that
 * is a library option (the Worker's concurrency, the Producer's maxPendingBatches, ...) takes its
 * check and default from that option's schema (src/queue/worker-options.ts, ...), the one place
 * they are written.
 */
import { z } from 'zod';
import { PgBulkIngestError } from '../errors.ts';
import { blockingDelaysSchema } from '../ingest/options-schema.ts';
import { integer, problemLines } from '../ingest/parse-options.ts';
import { DEFAULT_DATABASE_URL, DEFAULT_REDIS_URL, queueNamesSchema } from '../queue/queue-config.ts';
import { workerOptionsSchema } from '../queue/worker-options.ts';

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
  queueName: queueNamesSchema.shape.queueName,
  prefix: queueNamesSchema.shape.prefix,
});

/**
 * A number as a flag or an environment variable gives it: text, read as zod's `coerce` does; text
 * that is no number stays text, for the error to show as given.
 */
const fromText = (value: unknown) =>
  typeof value === 'string' && !Number.isNaN(Number(value)) ? Number(value) : value;

/**
 * Number settings that are library options: each keeps the option's check and default, and
 * takes text. `shape` is an options schema's (`workerOptionsSchema.shape`).
 */
export function numberSettings<S extends z.ZodRawShape, K extends keyof S & string>(
  shape: S,
  keys: readonly K[],
): { [P in K]: z.ZodPreprocess<S[P], unknown> } {
  return Object.fromEntries(keys.map((key) => [key, numberSetting(shape[key] as S[K])])) as {
    [P in K]: z.ZodPreprocess<S[P], unknown>;
  };
}

/** A number setting: `field`'s check and default, taking text. */
export function numberSetting<T extends z.core.SomeType>(field: T): z.ZodPreprocess<T, unknown> {
  return z.preprocess(fromText, field);
}

export const workerConfigSchema = connectionConfigSchema.extend({
  ...numberSettings(workerOptionsSchema.shape, [
    'concurrency',
    'poisonRetries',
    'poisonBackoffMs',
    'lockDurationMs',
    'stalledIntervalMs',
    'sweepIntervalMs',
    'shutdownTimeoutMs',
    'coalesceMaxBatches',
    'coalesceMaxRows',
    'coalesceMaxBytes',
    'ledgerRetentionDays',
  ]),
  metricsPort: numberSetting(integer(0, 65535).default(9464)),
  metricsHost: z.string().default('0.0.0.0'),
  // The Worker's blockingBackends, ingest()'s option: its delays' checks and defaults.
  cancelBlockersAfterMs: numberSetting(blockingDelaysSchema.shape.cancelAfterMs),
  terminateBlockersAfterMs: numberSetting(blockingDelaysSchema.shape.terminateAfterMs),
});

export type ConnectionConfig = z.output<typeof connectionConfigSchema>;
export type WorkerConfig = z.output<typeof workerConfigSchema>;

/** Where each setting comes from, for error messages: `--concurrency / WORKER_CONCURRENCY`. */
export type SettingSources = Readonly<Record<string, string>>;

/**
 * Validates settings; an error names each bad setting, where it comes from, and the value given,
 * except for the `secrets` (a token must not reach a terminal or a log, even a wrong one).
 */
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
  const problems = problemLines(result.error, present, (key) => `  ${sources[key] ?? key}`, secrets);
  throw new PgBulkIngestError('INVALID_CONFIG', `Invalid configuration:\n${problems.join('\n')}`);
}
