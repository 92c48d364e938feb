/** Options and helpers every command shares. */
import { type Command, Option } from 'commander';
import type { Logger } from 'pino';
import type { z } from 'zod';
import { PgBulkIngestError } from '../../errors.ts';
import { defaultOf } from '../../ingest/parse-options.ts';
import { connectionConfigSchema, parseConfig } from '../config.ts';

export type SettingTable = Record<string, readonly [flags: string, env: string, description: string]>;

/**
 * `settings` with each description ending in the default its field of `shape` (a configuration
 * schema's) applies, "(default 2)": what `--help` and docs/operations.md show, never written by
 * hand where a schema has it. A description that states a default of its own is one the schema
 * has not (a computed one, such as the gateway's host).
 */
export function withDefaults<T extends SettingTable>(
  shape: Readonly<Record<string, z.ZodType>>,
  settings: T,
): { readonly [K in keyof T]: readonly [T[K][0], T[K][1], string] } {
  return Object.fromEntries(
    Object.entries(settings).map(([key, [flags, env, description]]) => {
      const field = shape[key];
      const value = field === undefined ? undefined : defaultOf(field);
      if (value === undefined) return [key, [flags, env, description]];
      if (description.includes('(default'))
        throw new Error(`${flags}: the help states a default the schema owns (${String(value)})`);
      return [key, [flags, env, `${description} (default ${String(value)})`]];
    }),
  ) as unknown as { readonly [K in keyof T]: readonly [T[K][0], T[K][1], string] };
}

/** Flag, environment variable and description of each shared setting. */
export const CONNECTION_SETTINGS = withDefaults(connectionConfigSchema.shape, {
  databaseUrl: ['--database-url <url>', 'DATABASE_URL', 'PostgreSQL connection string'],
  redisUrl: ['--redis-url <url>', 'REDIS_URL', 'Redis URL'],
  queueName: ['--queue <name>', 'PGBI_QUEUE', 'BullMQ queue name'],
  prefix: ['--prefix <prefix>', 'PGBI_PREFIX', "prefix of this tool's Redis keys"],
} as const);

/**
 * The log level: an environment variable only (no flag), read by the long-running commands
 * (`readBy`). docs/operations.md's settings tables are generated from this and the flags.
 */
export const LOG_LEVEL_SETTING = {
  env: 'LOG_LEVEL',
  default: 'info',
  description: 'pino log level: trace, debug, info, warn, error, fatal or silent',
  readBy: ['worker', 'gateway'],
} as const;

export function logLevel(): string {
  return process.env[LOG_LEVEL_SETTING.env] ?? LOG_LEVEL_SETTING.default;
}

/** Adds each setting as a flag that falls back to its environment variable. */
export function addSettings(command: Command, settings: SettingTable): Command {
  for (const [flags, env, description] of Object.values(settings))
    command.addOption(new Option(flags, description).env(env));
  return command;
}

/**
 * A command's configuration, validated by `schema` (parseConfig): its settings, each from its flag
 * or else its environment variable, and its `flagsOnly` (`{ localOnly: '--local-only' }`), keyed
 * by setting name. Commander names a flag's value after the flag (`--queue` → `queue`), which
 * need not be the setting's name (`queueName`). An error names each setting's sources
 * (`--concurrency / WORKER_CONCURRENCY`); the `secrets` never show their value.
 */
export function configFrom<S extends z.ZodType>(
  schema: S,
  settings: SettingTable,
  flags: Record<string, unknown>,
  options: { flagsOnly?: Readonly<Record<string, string>>; secrets?: ReadonlySet<string> } = {},
): z.output<S> {
  const sources = {
    ...Object.fromEntries(
      Object.entries(settings).map(([key, [flag, env]]) => [key, `${flag.split(' ')[0]} / ${env}`]),
    ),
    ...options.flagsOnly,
  };
  const flagOf = (key: string) => (settings[key]?.[0] ?? options.flagsOnly?.[key]) as string;
  const input = Object.fromEntries(
    Object.keys(sources).map((key) => [key, flags[new Option(flagOf(key)).attributeName()]]),
  );
  return parseConfig(schema, input, sources, options.secrets);
}

/**
 * A long-running command's graceful stop: on the first SIGTERM or SIGINT, logs `message` and runs
 * `close`, then exits 0, or 1 if closing failed.
 */
export function stopOnSignals(logger: Logger, message: string, close: () => Promise<unknown>): void {
  let stopping = false;
  const stop = (signal: string) => {
    if (stopping) return;
    stopping = true;
    logger.info({ signal }, message);
    close().then(
      () => process.exit(0),
      (error: unknown) => {
        logger.error({ err: error }, 'error while stopping');
        process.exit(1);
      },
    );
  };
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));
}

/** Runs a command body; a known error prints its message (no stack) and exits 2. */
export async function runCommand(body: () => Promise<void>): Promise<void> {
  try {
    await body();
  } catch (error) {
    if (error instanceof PgBulkIngestError) {
      process.stderr.write(`${error.message}\n`);
      process.exit(2);
    }
    throw error;
  }
}
