/**
 * Which row of the batch each line of one COPY holds, so that a value PostgreSQL refuses
 * ("COPY t, line 3") is reported by its position in the whole batch. Lines are kept as
 * arithmetic runs (first line, first batch row, stride): a one-table batch is a single run, two
 * tables alternating row by row are one run each. Memory stays bounded: past MAX_RUNS runs the
 * positions are given up and errors fall back to the row's position within its table.
 */
const MAX_RUNS = 4096;

export class CopyLinePositions {
  /** Flat triples: first line (1-based), its batch row, stride (0 while the run has one line). */
  readonly #runs: number[] = [];
  #lines = 0;
  #overflowed = false;

  /** Records that the next line of the COPY holds batch row `batchRow`. */
  add(batchRow: number): void {
    this.#lines += 1;
    const runs = this.#runs;
    const n = runs.length;
    if (n > 0) {
      const firstLine = runs[n - 3] as number;
      const firstRow = runs[n - 2] as number;
      const stride = runs[n - 1] as number;
      const offset = this.#lines - firstLine;
      if (stride === 0 && offset === 1 && batchRow > firstRow) {
        runs[n - 1] = batchRow - firstRow;
        return;
      }
      if (stride > 0 && firstRow + stride * offset === batchRow) return;
    }
    if (n / 3 >= MAX_RUNS) this.#overflowed = true;
    else runs.push(this.#lines, batchRow, 0);
  }

  /** Records that the next `count` lines hold batch rows `firstBatchRow`, `firstBatchRow + 1`, ... */
  addLines(firstBatchRow: number, count: number): void {
    for (let k = 0; k < count; k++) this.add(firstBatchRow + k);
  }

  /** The batch row of a COPY line, or undefined if positions were given up. */
  batchRowOf(line: number): number | undefined {
    if (this.#overflowed || line < 1 || line > this.#lines) return undefined;
    const runs = this.#runs;
    let low = 0;
    let high = runs.length / 3 - 1;
    while (low < high) {
      const mid = Math.ceil((low + high) / 2);
      if ((runs[mid * 3] as number) <= line) low = mid;
      else high = mid - 1;
    }
    const firstLine = runs[low * 3] as number;
    return (runs[low * 3 + 1] as number) + (runs[low * 3 + 2] as number) * (line - firstLine);
  }
}
