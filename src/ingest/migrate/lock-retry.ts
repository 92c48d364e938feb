/**
 * Taking an ACCESS EXCLUSIVE lock without stalling readers. A statement waiting for that lock
 * sits in the lock queue, and every later reader of the table queues behind it, for as long as
 * whatever holds a conflicting lock (one long report query) runs. So each ALTER attempt waits
 * at most `ALTER_LOCK_TIMEOUT_MS` (`SET LOCAL lock_timeout`), then gives up (SQLSTATE 55P03),
 * its transaction rolls back, and it tries again after a growing, jittered pause, during which
 * readers run freely. A reader is thus held up by at most one lock timeout per attempt.
 *
 * Retries go on until the `blockingBackends` cancel delay (5 minutes by default); then one last
 * attempt waits without a timeout while the blockers are cancelled, then terminated, as a table
 * swap does (force-execute.ts). With `blockingBackends: false`, it retries for ever.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { asDatabaseError } from '../../errors.ts';
import type { BlockingBackends, BlockingDelays } from '../options-schema.ts';

/** How long one ALTER may sit in the lock queue, blocking the readers behind it. */
export const ALTER_LOCK_TIMEOUT_MS = 200;
/**
 * Pauses between attempts start short and grow by half: a table read in a tight loop by queries
 * longer than the timeout frees its lock only between them, so the next attempt should come
 * soon (each costs readers at most one timeout); a table held by one long transaction is not
 * polled more than every 2 s.
 */
const FIRST_PAUSE_MS = 20;
const PAUSE_GROWTH = 1.5;
const MAX_PAUSE_MS = 2_000;

export class LockRetry {
  readonly #startedAt = performance.now();
  readonly #retryForMs: number;
  readonly blockingBackends: BlockingBackends;
  #pauseMs = FIRST_PAUSE_MS;
  attempts = 0;
  /** Time spent in attempts that timed out and in the pauses between them. */
  waitedMs = 0;

  constructor(blockingBackends: BlockingBackends) {
    this.blockingBackends = blockingBackends;
    this.#retryForMs = blockingBackends === false ? Number.POSITIVE_INFINITY : blockingBackends.cancelAfterMs;
  }

  /** The last attempt waits for the lock (0 = no timeout) and removes blockers instead of giving up. */
  get isLast(): boolean {
    return performance.now() - this.#startedAt >= this.#retryForMs;
  }

  /**
   * `blockingBackends` for the last attempt: the cancel delay has already passed while retrying.
   * With `false` there is no last attempt (`isLast` never holds): it waits, as it always would.
   */
  lastAttemptBlockingBackends(): BlockingBackends {
    const d: BlockingDelays | false = this.blockingBackends;
    if (d === false) return false;
    return {
      cancelAfterMs: 0,
      terminateAfterMs: Math.max(0, d.terminateAfterMs - d.cancelAfterMs),
      intervalMs: d.intervalMs,
    };
  }

  /** True (after the pause) when `error` is a lock timeout worth another attempt; false to rethrow it. */
  async shouldRetry(error: unknown, attemptMs: number): Promise<boolean> {
    if (asDatabaseError(error)?.code !== '55P03') return false;
    this.waitedMs += attemptMs;
    const pause = this.#pauseMs * (0.5 + Math.random());
    this.#pauseMs = Math.min(MAX_PAUSE_MS, this.#pauseMs * PAUSE_GROWTH);
    await sleep(pause);
    this.waitedMs += pause;
    return true;
  }
}
