/**
 * Retention of the ledger (bulk_ingest.batches): every worker deletes rows older than the
 * retention, on a timer, in small steps of their own (never in a batch's transaction), so that
 * pruning a backlog never holds locks or bloats one transaction. Workers pruning at once take
 * different rows (SKIP LOCKED, see prune-ledger in ledger.ts).
 */
import type pg from 'pg';
import type { Logger } from 'pino';
import { pruneLedgerStep } from './ledger.ts';

/** Rows deleted per statement. */
const STEP_ROWS = 1000;
/** Steps per round at most: a large backlog is worked off over several rounds. */
const MAX_STEPS = 100;
/** How often a worker prunes (and once when it starts). Retention is in days: often enough. */
export const PRUNE_INTERVAL_MS = 10 * 60 * 1000;

export class LedgerRetention {
  readonly #pool: pg.Pool;
  readonly #days: number;
  readonly #log: Logger;
  #timer: NodeJS.Timeout | undefined;
  #running: Promise<number> | undefined;
  #stopped = false;

  /** `days` 0 keeps the ledger forever (nothing is pruned). */
  constructor(pool: pg.Pool, days: number, log: Logger) {
    this.#pool = pool;
    this.#days = days;
    this.#log = log;
  }

  start(): void {
    if (this.#days <= 0) return;
    const round = () =>
      void this.prune().catch((error) => this.#log.warn({ err: error }, 'ledger pruning failed'));
    round();
    this.#timer = setInterval(round, PRUNE_INTERVAL_MS);
    this.#timer.unref();
  }

  /** One round: deletes expired rows, a step at a time; returns how many. Never two rounds at once. */
  prune(): Promise<number> {
    this.#running ??= this.#round().finally(() => {
      this.#running = undefined;
    });
    return this.#running;
  }

  /** Stops the timer and waits for a round in progress (it ends after its current step). */
  async stop(): Promise<void> {
    this.#stopped = true;
    clearInterval(this.#timer);
    await this.#running?.catch(() => undefined);
  }

  async #round(): Promise<number> {
    if (this.#days <= 0) return 0;
    let deleted = 0;
    for (let step = 0; step < MAX_STEPS && !this.#stopped; step++) {
      const n = await pruneLedgerStep(this.#pool, this.#days, STEP_ROWS);
      deleted += n;
      if (n < STEP_ROWS) break;
    }
    if (deleted > 0) this.#log.info({ deleted, retentionDays: this.#days }, 'ledger rows pruned');
    return deleted;
  }
}
