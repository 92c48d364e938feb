/**
 * A one-line progress display for long interactive work (`enqueue`, `demo`). On a TTY the line
 * is redrawn in place (throttled); elsewhere (a log file, `docker compose logs`) it is either
 * silent or printed as a plain line every few seconds, so logs are not flooded with redraws.
 * Hand-written on purpose: a carriage return and an erase-line escape are all it takes.
 */

export interface ProgressLineOptions {
  /** Where to draw. @default process.stderr */
  readonly stream?: NodeJS.WritableStream & { isTTY?: boolean; columns?: number };
  /** Draw in place even if the stream is not a TTY (tests). @default stream.isTTY */
  readonly tty?: boolean;
  /** Least time between two redraws on a TTY. @default 100 */
  readonly minIntervalMs?: number;
  /** Not a TTY: print the line at most this often; 0 prints nothing. @default 0 */
  readonly plainIntervalMs?: number;
}

const ERASE_TO_END = '\u001b[K';

export class ProgressLine {
  readonly #stream: NonNullable<ProgressLineOptions['stream']>;
  readonly #tty: boolean;
  readonly #minIntervalMs: number;
  readonly #plainIntervalMs: number;
  #lastDrawAt = Number.NEGATIVE_INFINITY;
  #drawn = false;

  constructor(options: ProgressLineOptions = {}) {
    this.#stream = options.stream ?? process.stderr;
    this.#tty = options.tty ?? this.#stream.isTTY === true;
    this.#minIntervalMs = options.minIntervalMs ?? 100;
    this.#plainIntervalMs = options.plainIntervalMs ?? 0;
  }

  /** True when updates are shown at all. */
  get visible(): boolean {
    return this.#tty || this.#plainIntervalMs > 0;
  }

  /** Shows `text` unless the last draw was too recent; `force` draws anyway. */
  update(text: string, force = false): void {
    const now = performance.now();
    const interval = this.#tty ? this.#minIntervalMs : this.#plainIntervalMs;
    if (!this.visible || (!force && now - this.#lastDrawAt < interval)) return;
    this.#lastDrawAt = now;
    if (this.#tty) {
      this.#stream.write(`\r${this.#fit(text)}${ERASE_TO_END}`);
      this.#drawn = true;
    } else {
      this.#stream.write(`${text}\n`);
    }
  }

  /** Removes the line (on a TTY) so that ordinary output can follow. */
  clear(): void {
    if (this.#tty && this.#drawn) this.#stream.write(`\r${ERASE_TO_END}`);
    this.#drawn = false;
  }

  /** Leaves `text` as the final state of the line (on a TTY), followed by a newline. */
  done(text?: string): void {
    if (!this.#tty) return;
    if (text === undefined) {
      this.clear();
      return;
    }
    this.#stream.write(`\r${this.#fit(text)}${ERASE_TO_END}\n`);
    this.#drawn = false;
  }

  #fit(text: string): string {
    const width = this.#stream.columns;
    return width && text.length >= width ? `${text.slice(0, Math.max(0, width - 2))}…` : text;
  }
}

/** Events per second over a sliding window of recent samples. */
export class RateMeter {
  readonly #windowMs: number;
  readonly #samples: { at: number; total: number }[] = [];
  #total = 0;

  /** @param windowMs how far back the rate looks. @default 5000 */
  constructor(windowMs = 5000) {
    this.#windowMs = windowMs;
    this.#samples.push({ at: performance.now(), total: 0 });
  }

  get total(): number {
    return this.#total;
  }

  add(count: number): void {
    this.#total += count;
    const now = performance.now();
    this.#samples.push({ at: now, total: this.#total });
    while (this.#samples.length > 2 && now - (this.#samples[1]?.at ?? now) > this.#windowMs)
      this.#samples.shift();
  }

  /** The rate over the window, counting the time since the last event too. */
  perSecond(): number {
    const first = this.#samples[0];
    if (!first) return 0;
    const elapsed = (performance.now() - first.at) / 1000;
    return elapsed > 0 ? (this.#total - first.total) / elapsed : 0;
  }
}

/** 1234567 → "1,234,567". */
export function formatCount(n: number): string {
  return Math.round(n).toLocaleString('en-US');
}

/** 1536 → "1.5 KiB". */
export function formatBytes(bytes: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let value = bytes;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit += 1;
  }
  return `${unit === 0 ? value : value.toFixed(1)} ${units[unit]}`;
}

/** 75_000 → "1m15s". */
export function formatDuration(ms: number): string {
  const seconds = Math.floor(ms / 1000);
  return seconds < 60
    ? `${seconds}s`
    : `${Math.floor(seconds / 60)}m${String(seconds % 60).padStart(2, '0')}s`;
}
