/**
 * Runs statements that may wait for a lock, and removes the backends that block them after a
 * delay: what the Python library does with pg-force-execute. A table swap needs a brief ACCESS
 * EXCLUSIVE lock; one long report query or one session left idle in a transaction would
 * otherwise hold the whole ingest up for as long as it likes.
 */

import { setTimeout as sleep } from 'node:timers/promises';
import pg from 'pg';
import { InvariantError, PgBulkIngestError } from '../../errors.ts';
import type { BlockingBackends, BlockingDelays } from '../options-schema.ts';

export interface BlockersRemoved<T> {
  /** What `fn` resolved to. */
  readonly result: T;
  /** Distinct backends sent `pg_cancel_backend` (cancelling an idle transaction frees nothing). */
  readonly cancelledBackends: number;
  /** Distinct backends sent `pg_terminate_backend`. */
  readonly terminatedBackends: number;
}

/** The fields of node-postgres' (untyped) `client.connectionParameters` a second connection needs. */
interface ConnectionParameters {
  readonly user?: string;
  readonly password?: string | (() => string | Promise<string>);
  readonly host?: string;
  readonly port?: number;
  readonly database?: string;
  readonly ssl?: pg.ClientConfig['ssl'];
}

/**
 * Runs `fn` (statements on `client`) while, once `cancelAfterMs` has passed, a second
 * connection cancels every `intervalMs` the backends blocking `client` (`pg_blocking_pids`),
 * and terminates them from `terminateAfterMs` on. The second connection is opened only if the
 * delay passes, and always closed. With `false`, `fn` simply runs and waits as long as it must.
 * If removing blockers fails (e.g. no permission to signal a superuser's backend), `fn`'s
 * statement is cancelled so the caller fails now rather than wait unseen, and that error is thrown.
 */
export async function withBlockersRemoved<T>(
  client: pg.ClientBase,
  options: BlockingBackends,
  fn: () => Promise<T>,
): Promise<BlockersRemoved<T>> {
  if (options === false) return { result: await fn(), cancelledBackends: 0, terminatedBackends: 0 };
  const watcher = new BlockerWatcher(sideConnectionConfig(client), await backendPid(client), options);
  const watching = watcher.watch();
  let outcome: { ok: true; value: T } | { ok: false; error: unknown };
  try {
    outcome = { ok: true, value: await fn() };
  } catch (error) {
    outcome = { ok: false, error };
  }
  watcher.stop();
  await watching; // never rejects: its error is kept in `watcher.error`
  if (watcher.error !== undefined) throw watcher.error; // the real cause; `fn` failed from our cancel
  if (!outcome.ok) throw outcome.error;
  return { result: outcome.value, ...watcher.counts() };
}

/**
 * Blocking backends: signals every backend that `$1` waits for.
 * Input: $1 pid of the waiting backend; $2 true to terminate, false to cancel the current query.
 * Output: one row per blocking backend with whether the signal was sent.
 * `pg_blocking_pids` also lists backends queued ahead of us for the same lock, as they would
 * be granted it first; pg-force-execute cancels those too.
 */
const SIGNAL_BLOCKING_BACKENDS = `
  SELECT pid, CASE WHEN $2::boolean THEN pg_terminate_backend(pid) ELSE pg_cancel_backend(pid) END AS signalled
  FROM unnest(pg_blocking_pids($1::integer)) AS pid`;

class BlockerWatcher {
  readonly #config: pg.ClientConfig;
  readonly #pid: number;
  readonly #delays: BlockingDelays;
  readonly #abort = new AbortController();
  readonly #cancelled = new Set<number>();
  readonly #terminated = new Set<number>();
  readonly #startedAt = performance.now();
  error: unknown = undefined;

  constructor(config: pg.ClientConfig, pid: number, delays: BlockingDelays) {
    this.#config = config;
    this.#pid = pid;
    this.#delays = delays;
  }

  stop(): void {
    this.#abort.abort();
  }

  counts(): { cancelledBackends: number; terminatedBackends: number } {
    return { cancelledBackends: this.#cancelled.size, terminatedBackends: this.#terminated.size };
  }

  async watch(): Promise<void> {
    const { cancelAfterMs, terminateAfterMs } = this.#delays;
    if (!(await this.#sleep(Math.min(cancelAfterMs, terminateAfterMs)))) return;
    const side = new pg.Client(this.#config);
    // An idle client that loses its connection emits 'error'; unhandled, that would crash the
    // process. The next query on it rejects with the cause, which is where we report it.
    side.on('error', () => {});
    try {
      await side.connect();
      await this.#removeBlockers(side);
    } catch (error) {
      this.error = error;
      await cancelStatement(side, this.#pid, this.#abort.signal);
    } finally {
      await side.end();
    }
  }

  async #removeBlockers(side: pg.Client): Promise<void> {
    do {
      if (this.#abort.signal.aborted) return;
      const terminate = performance.now() - this.#startedAt >= this.#delays.terminateAfterMs;
      const { rows } = await side.query<{ pid: number; signalled: boolean }>(SIGNAL_BLOCKING_BACKENDS, [
        this.#pid,
        terminate,
      ]);
      for (const row of rows)
        if (row.signalled) (terminate ? this.#terminated : this.#cancelled).add(row.pid);
    } while (await this.#sleep(this.#delays.intervalMs));
  }

  /** Resolves true after `ms`, or false as soon as the watcher is stopped. */
  async #sleep(ms: number): Promise<boolean> {
    try {
      await sleep(ms, undefined, { signal: this.#abort.signal });
      return true;
    } catch (error) {
      if (this.#abort.signal.aborted) return false;
      throw error;
    }
  }
}

/**
 * Cancels our own waiting statement after the watcher failed, so the caller hears of it now.
 * Best effort: if the side connection is what failed, this fails too, and the watcher's error,
 * thrown once `fn` settles, is the one that matters.
 */
async function cancelStatement(side: pg.Client, pid: number, stopped: AbortSignal): Promise<void> {
  if (stopped.aborted) return; // `fn` has settled: there is nothing to cancel
  try {
    await side.query('SELECT pg_cancel_backend($1::integer)', [pid]);
  } catch {
    // Deliberately ignored: see above; the watcher's own error is reported instead.
  }
}

async function backendPid(client: pg.ClientBase): Promise<number> {
  const { rows } = await client.query<{ pid: number }>('SELECT pg_backend_pid() AS pid');
  const pid = rows[0]?.pid;
  if (pid === undefined) throw new InvariantError('SELECT pg_backend_pid() returned no row');
  return pid;
}

/** Connects as `client` did, so the blockers can be signalled with the same role's rights. */
function sideConnectionConfig(client: pg.ClientBase): pg.ClientConfig {
  const parameters = (client as unknown as { connectionParameters?: ConnectionParameters })
    .connectionParameters;
  if (parameters === undefined) {
    throw new PgBulkIngestError(
      'INVALID_OPTIONS',
      'Expected a node-postgres Client (or pool client) with `connectionParameters` to open a second ' +
        'connection that removes blocking backends; pass `blockingBackends: false` to wait instead',
    );
  }
  const { user, password, host, port, database, ssl } = parameters;
  return { user, password, host, port, database, ssl, application_name: 'pg-bulk-ingest: blocking backends' };
}
