/**
 * Worker child processes, for whoever starts `pg-bulk-ingest worker` from Node: the demo, the
 * benchmark and the tests. It owns how a worker is started (this Node, the Node flags every
 * long-running process of ours gets, and the tsx loader when running from the TypeScript
 * sources), where its output goes, how to tell it has started (it logs "worker started", at
 * LOG_LEVEL info or lower), and how it is stopped: SIGTERM for a graceful stop (current batches
 * finish), SIGKILL after a timeout or at once (`kill -9`). Every child is tracked until it exits
 * and SIGKILLed if this process exits first: nothing outlives its parent.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { closeSync, openSync, readFileSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { NODE_FLAGS } from './node-flags.ts';

export interface Exit {
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
}

/** `node <NODE_FLAGS> [--import tsx] <main> <args>`, whether this runs from src (TypeScript) or dist. */
export function cliCommand(args: readonly string[]): { command: string; args: string[] } {
  const fromSources = import.meta.url.endsWith('.ts');
  const main = fileURLToPath(new URL(`./cli/main.${fromSources ? 'ts' : 'js'}`, import.meta.url));
  const loader = fromSources ? ['--import', import.meta.resolve('tsx')] : [];
  return { command: process.execPath, args: [...NODE_FLAGS, ...loader, main, ...args] };
}

/** `cliCommand(['worker'])`. */
export function workerCommand(): { command: string; args: string[] } {
  return cliCommand(['worker']);
}

const live = new Set<ChildProcess>();
process.once('exit', () => {
  for (const child of live) child.kill('SIGKILL');
});

/** Tracks `child` until it exits: SIGKILLed if this process exits first. */
export function killOnExit(child: ChildProcess): ChildProcess {
  live.add(child);
  child.once('exit', () => live.delete(child));
  return child;
}

/** Emergency stop: SIGKILL to every child still running (a second Ctrl-C). */
export function killAllWorkerProcesses(): void {
  for (const child of live) child.kill('SIGKILL');
}

/**
 * Where a worker's stdout and stderr go: `'keep'` in memory (its last 64 KiB), a file, or this
 * process's stderr (then `output` is empty).
 */
export type WorkerOutput = 'keep' | 'stderr' | { readonly file: string };

export interface WorkerProcessOptions {
  /** Its whole environment (DATABASE_URL, REDIS_URL, PGBI_QUEUE, ...). */
  readonly env: NodeJS.ProcessEnv;
  readonly output: WorkerOutput;
  /** Node flags before those of `workerCommand` (profiling, ...). @default [] */
  readonly nodeFlags?: readonly string[];
  /** @default this process's */
  readonly cwd?: string;
  /** Names it in messages. @default 'worker' */
  readonly label?: string;
}

const KEPT_OUTPUT = 64 * 1024;
const STARTED = '"worker started"';

/** One `pg-bulk-ingest worker` child process, started by the constructor. */
export class WorkerProcess {
  /** What it was started with: `new WorkerProcess(w.options)` starts another alike. */
  readonly options: WorkerProcessOptions;
  readonly label: string;
  readonly child: ChildProcess;
  /** Resolves once it has exited and its output is complete. */
  readonly exited: Promise<Exit>;
  exit: Exit | undefined;
  #kept = '';
  #startedAt: number | undefined;

  constructor(options: WorkerProcessOptions) {
    this.options = options;
    this.label = options.label ?? 'worker';
    const { command, args } = workerCommand();
    const file = typeof options.output === 'object' ? openSync(options.output.file, 'w') : undefined;
    const out = file ?? (options.output === 'stderr' ? 2 : 'pipe');
    this.child = killOnExit(
      spawn(command, [...(options.nodeFlags ?? []), ...args], {
        cwd: options.cwd,
        env: options.env,
        stdio: ['ignore', out, out],
      }),
    );
    if (file !== undefined) closeSync(file); // the child has its own copy
    const keep = (chunk: Buffer) => {
      this.#kept = (this.#kept + chunk.toString()).slice(-KEPT_OUTPUT);
      if (this.#startedAt === undefined && this.#kept.includes(STARTED)) this.#startedAt = Date.now();
    };
    this.child.stdout?.on('data', keep);
    this.child.stderr?.on('data', keep);
    this.exited = new Promise((resolve) => {
      this.child.once('close', (code: number | null, signal: NodeJS.Signals | null) => {
        this.exit = { code, signal };
        resolve(this.exit);
      });
    });
  }

  /** Its pid (0 if it could not be spawned). */
  get pid(): number {
    return this.child.pid ?? 0;
  }

  get alive(): boolean {
    return this.exit === undefined;
  }

  /** Everything it printed (pino logs go to stdout, crashes to stderr) as far as it is kept. */
  get output(): string {
    const { output } = this.options;
    if (typeof output !== 'object') return this.#kept;
    try {
      return readFileSync(output.file, 'utf8');
    } catch {
      return '';
    }
  }

  /** When it logged that it started (seen then); undefined: not yet. */
  get startedAt(): number | undefined {
    if (this.#startedAt === undefined && this.output.includes(STARTED)) this.#startedAt = Date.now();
    return this.#startedAt;
  }

  /** The last lines of its output, for error messages. */
  tail(lines = 15): string {
    return this.output.trimEnd().split('\n').slice(-lines).join('\n');
  }

  /**
   * Resolves once it logged that it started, or at once when `signal` is aborted; throws with the
   * tail of its output if it exits first or `timeoutMs` passes.
   */
  async waitUntilStarted(timeoutMs: number, signal?: AbortSignal): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (this.startedAt === undefined) {
      if (!this.alive) throw new Error(`${this.label} exited while starting:\n${this.tail()}`);
      if (signal?.aborted) return;
      if (Date.now() > deadline)
        throw new Error(`${this.label} did not start within ${timeoutMs / 1000} s:\n${this.tail()}`);
      await sleep(100);
    }
  }

  /** `kill -9`: no cleanup, no ROLLBACK sent, no job released. */
  kill(): Promise<Exit> {
    if (this.alive) this.child.kill('SIGKILL');
    return this.exited;
  }

  /**
   * SIGTERM (a graceful stop: it takes no more jobs, finishes or abandons its batches), then waits
   * for the exit; SIGKILL if it takes longer than `timeoutMs`, and then `killed` is true.
   */
  async stop(timeoutMs: number): Promise<{ exit: Exit; killed: boolean }> {
    if (!this.alive) return { exit: await this.exited, killed: false };
    this.child.kill('SIGTERM');
    let timer: NodeJS.Timeout | undefined;
    const late = new Promise<'late'>((resolve) => {
      timer = setTimeout(() => resolve('late'), timeoutMs);
    });
    const result = await Promise.race([this.exited, late]);
    clearTimeout(timer);
    if (result !== 'late') return { exit: result, killed: false };
    return { exit: await this.kill(), killed: true };
  }
}
