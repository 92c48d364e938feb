/**
 * A redis-server of the test's own, on a free port, for tests that must crash, restart or fill
 * Redis: the shared one is never touched. `persistence` chooses what a restart keeps.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { createConnection } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort } from './free-port.ts';
import { waitUntil } from './wait.ts';

export interface PrivateRedisOptions {
  /** 'aof-always' (every acknowledged write on disk), or 'none' (a restart starts empty). @default 'aof-always' */
  readonly persistence?: 'aof-always' | 'none';
  /** `maxmemory`, e.g. '4mb' (with noeviction). @default no bound */
  readonly maxmemory?: string;
}

/** A redis-server of our own with AOF fsynced on every write; `crash()` is kill -9. */
export class PrivateRedis {
  readonly dir = mkdtempSync(join(tmpdir(), 'pgbi-redis-'));
  readonly #options: PrivateRedisOptions;
  constructor(options: PrivateRedisOptions = {}) {
    this.#options = options;
  }
  port = 0;
  process: ChildProcess | undefined;
  get url() {
    return `redis://127.0.0.1:${this.port}`;
  }
  async start() {
    if (this.port === 0) this.port = await freePort();
    const args = [
      '--port',
      String(this.port),
      '--bind',
      '127.0.0.1',
      ...(this.#options.persistence === 'none'
        ? ['--appendonly', 'no']
        : ['--appendonly', 'yes', '--appendfsync', 'always']),
      ...(this.#options.maxmemory ? ['--maxmemory', this.#options.maxmemory] : []),
      '--dir',
      this.dir,
      '--save',
      '',
      '--maxmemory-policy',
      'noeviction',
    ];
    this.process = spawn('redis-server', args, { stdio: 'ignore' });
    await waitUntil(`redis-server on port ${this.port}`, () => this.ping(), { timeoutMs: 10_000 });
  }
  async crash() {
    const child = this.process as ChildProcess;
    const exited = new Promise((resolve) => child.once('exit', resolve));
    child.kill('SIGKILL');
    await exited;
  }
  /** True once it answers PONG (not -LOADING while it replays the AOF). */
  ping(): Promise<boolean> {
    return new Promise((resolve) => {
      const socket = createConnection(this.port, '127.0.0.1');
      socket.once('error', () => resolve(false));
      socket.once('connect', () => socket.write('PING\r\n'));
      socket.once('data', (data) => {
        resolve(data.toString().startsWith('+PONG'));
        socket.destroy();
      });
    });
  }
  async destroy() {
    if (this.process && this.process.exitCode === null && this.process.signalCode === null)
      await this.crash();
    rmSync(this.dir, { recursive: true, force: true });
  }
}
