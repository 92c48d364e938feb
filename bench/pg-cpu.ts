/**
 * CPU time PostgreSQL spends for a method: the timed run connects with application_name
 * `pgbi-bench`, and this sampler reads its backends' user + system time from /proc every 100 ms
 * (the last sample before a backend exits counts, so up to 100 ms per backend may be missed).
 * Wall time on a busy machine depends on what else runs; CPU time much less, so the two CPU
 * figures say which side bounds a method. Undefined when PostgreSQL runs on another machine.
 */
import { readFileSync } from 'node:fs';
import type pg from 'pg';

export const BENCH_APPLICATION_NAME = 'pgbi-bench';

/** The URL with application_name set, so the sampler finds the run's backends. */
export function taggedUrl(databaseUrl: string): string {
  const url = new URL(databaseUrl);
  url.searchParams.set('application_name', BENCH_APPLICATION_NAME);
  return url.toString();
}

const TICK_MS = 10; // USER_HZ is 100 on Linux

function cpuMsOf(pid: number): number | undefined {
  try {
    const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]?.split(' ') ?? [];
    return (Number(fields[11]) + Number(fields[12])) * TICK_MS;
  } catch {
    return undefined;
  }
}

export class PgCpuSampler {
  readonly #client: pg.Client;
  /** Latest CPU milliseconds seen per backend (backends start at 0: all their time counts). */
  readonly #last = new Map<number, number>();
  #timer: NodeJS.Timeout | undefined;
  #available = true;
  #pending: Promise<void> = Promise.resolve();

  constructor(client: pg.Client) {
    this.#client = client;
  }

  start(): void {
    this.#timer = setInterval(() => {
      this.#pending = this.#sample();
    }, 100);
  }

  async #sample(): Promise<void> {
    const { rows } = await this.#client.query<{ pid: number }>(
      'SELECT pid FROM pg_stat_activity WHERE application_name = $1',
      [BENCH_APPLICATION_NAME],
    );
    for (const { pid } of rows) {
      const ms = cpuMsOf(pid);
      if (ms === undefined) {
        this.#available = false;
        continue;
      }
      this.#last.set(pid, ms);
    }
  }

  /** Total CPU milliseconds of the sampled backends, or undefined if /proc could not be read. */
  async stop(): Promise<number | undefined> {
    clearInterval(this.#timer);
    await this.#pending;
    await this.#sample();
    if (!this.#available) return undefined;
    let total = 0;
    for (const ms of this.#last.values()) total += ms;
    return total;
  }
}
