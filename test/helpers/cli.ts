/**
 * The CLI (`pg-bulk-ingest <command>`) run from the sources as a child process, started as
 * src/ops/worker-processes.ts starts every process of ours (`cliCommand`), with the environment
 * a child of a test gets: ours, without the test runner's variables or an inherited fault.
 */
import type { ChildProcess } from 'node:child_process';
import { spawn } from 'node:child_process';
import { cliCommand, killOnExit } from '../../src/ops/worker-processes.ts';
import type { Connection } from './queue.ts';

/** Our environment minus the test runner's and any inherited fault, with `extra` (undefined: removed). */
export function childEnv(extra: Record<string, string | undefined>): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env };
  for (const key of ['NODE_TEST_CONTEXT', 'PGBI_TEST_FAULT', 'NODE_OPTIONS']) delete env[key];
  for (const [key, value] of Object.entries(extra)) {
    if (value === undefined) delete env[key];
    else env[key] = value;
  }
  return env;
}

/** The variables that put a worker or a command on the test's queue. */
export function connectionEnv(c: Connection): Record<string, string> {
  return {
    DATABASE_URL: c.databaseUrl,
    REDIS_URL: c.redisUrl,
    PGBI_QUEUE: c.queueName,
    PGBI_PREFIX: c.prefix,
  };
}

export interface CliResult {
  readonly code: number | null;
  readonly stdout: string;
  readonly stderr: string;
}

export interface CliOptions {
  /** The test's queue, as `connectionEnv`. */
  readonly connection?: Connection;
  /** Variables on top of `childEnv` and the connection's (undefined: removed). */
  readonly env?: Record<string, string | undefined>;
  /** Written to its stdin, which is then closed. @default '' */
  readonly input?: string;
}

/** Starts `pg-bulk-ingest <args>`; `done` resolves with its exit code and output once it exited. */
export function startCli(
  args: readonly string[],
  options: CliOptions = {},
): { child: ChildProcess; done: Promise<CliResult> } {
  const { command, args: argv } = cliCommand(args);
  const env = childEnv({ ...(options.connection && connectionEnv(options.connection)), ...options.env });
  const child = killOnExit(spawn(command, argv, { env }));
  let stdout = '';
  let stderr = '';
  child.stdout?.on('data', (d: Buffer) => {
    stdout += d;
  });
  child.stderr?.on('data', (d: Buffer) => {
    stderr += d;
  });
  child.stdin?.end(options.input ?? '');
  const done = new Promise<CliResult>((resolve, reject) => {
    child.once('error', reject);
    child.once('close', (code: number | null) => resolve({ code, stdout, stderr }));
  });
  return { child, done };
}

/**
 * Runs a command to completion (`status`, `enqueue`, ...), at LOG_LEVEL warn unless `env` says
 * otherwise. No time limit of its own: on a loaded machine tsx alone can take a minute to start;
 * the test's timeout bounds it.
 */
export function runCli(args: readonly string[], options: CliOptions = {}): Promise<CliResult> {
  return startCli(args, { ...options, env: { LOG_LEVEL: 'warn', ...options.env } }).done;
}
