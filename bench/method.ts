/**
 * What a benchmark method is. `run.ts` gives each run a fresh schema, calls `setup` (untimed,
 * in the parent), then times either `run` in a child Node process of its own (so its peak RSS
 * is its own) or an external `command` (psql). New methods, such as the queue end to end, are
 * new modules listed in methods.ts.
 */

/** Plain data, so it can be handed to a child process as JSON. */
export interface MethodContext {
  readonly databaseUrl: string;
  /** Fresh for each run; the method writes to `<schema>.rows`. */
  readonly schema: string;
  /** Rows this run writes (may be fewer than the bench's rows: see `maxRows`). */
  readonly rows: number;
  readonly batchSize: number;
  readonly seed: number;
  /** COPY text file of rows 0 .. (bench rows - 1) of `seed`. */
  readonly copyFile: string;
  /** COPY text file of the same keys with other values (`seed + 1`), for pre-filling. */
  readonly prefillFile: string;
}

/**
 * At least `atLeast` × the rows/s of method `of`, a peak RSS below `maxRssMb`, or a reported
 * metric below `below` or at least `atLeast`.
 */
export type Target =
  | { readonly of: string; readonly atLeast: number }
  | { readonly maxRssMb: number }
  | { readonly metric: string; readonly below: number; readonly label: string; readonly unit: string }
  | { readonly metric: string; readonly atLeast: number; readonly label: string; readonly unit: string };

/**
 * What `run` may return instead of a row count: a method that times itself (from its first
 * enqueue) or whose memory is in other processes (queue workers) reports those; `metrics` are
 * extra figures (e.g. latency percentiles), printed after the table and kept in results.json.
 */
export interface RunReport {
  readonly rows: number;
  readonly ms?: number;
  readonly cpuMs?: number;
  readonly maxRssKb?: number;
  readonly metrics?: Readonly<Record<string, number>>;
}

interface MethodBase {
  /** Stable id (results.json, BENCH_METHODS). */
  readonly id: string;
  /** As printed in the results table. */
  readonly label: string;
  /** Id of another method this one is also compared with (e.g. the upsert reference). */
  readonly reference?: string;
  /** Its table ends up holding exactly the copy file's rows: the others are checked against it. */
  readonly loadsCopyFile?: boolean;
  /**
   * It writes rows of its own, not the copy file's, and checks its table itself (throwing when
   * wrong): run.ts neither compares the table with the copy file nor writes the copy files for it.
   */
  readonly ownRows?: boolean;
  /** Run on at most this many rows; rows/s is then extrapolated (and the table says so). */
  readonly maxRows?: number;
  /** Goals checked and printed after the results table. */
  readonly targets?: readonly Target[];
  /** Untimed: create the table, pre-fill it. */
  setup(ctx: MethodContext): Promise<void>;
}

export interface NodeMethod extends MethodBase {
  readonly kind: 'node';
  /** Timed, in a child process; returns how many rows it wrote (or a RunReport). */
  run(ctx: MethodContext): Promise<number | RunReport>;
}

export interface CommandMethod extends MethodBase {
  readonly kind: 'command';
  /** The process to time, as [file, args]. */
  command(ctx: MethodContext): [string, string[]];
}

export type BenchMethod = NodeMethod | CommandMethod;
