/** What the demo counts while it runs, and how it shows it: the live line and the final summary. */
import type { Json } from '../../ingest/options.ts';
import type { StreamStatus } from '../../queue/admin.ts';
import { formatCount, formatDuration, RateMeter } from '../progress.ts';
import type { SyntheticBatchMetadata } from './synthetic-feed.ts';

/** Per stream: rows enqueued through each batch, so committed rows follow from the committed seq. */
export class DemoTally {
  readonly rate = new RateMeter(5000);
  /** table → rows inserted (new keys) and updated (existing keys) by enqueued batches. */
  readonly inserted = new Map<string, number>();
  readonly updated = new Map<string, number>();
  readonly #rowsThrough = new Map<string, number[]>();
  readonly #batches = new Map<string, number>();

  /** Records one enqueued batch (`batch` is its number in the feed: its seq on a clean stream). */
  record(stream: string, rows: number, metadata: SyntheticBatchMetadata): void {
    const through = this.#rowsThrough.get(stream) ?? [0];
    through[metadata.batch] = (through[metadata.batch - 1] ?? through.at(-1) ?? 0) + rows;
    this.#rowsThrough.set(stream, through);
    this.#batches.set(stream, (this.#batches.get(stream) ?? 0) + 1);
    for (const [table, n] of Object.entries(metadata.inserted))
      this.inserted.set(table, (this.inserted.get(table) ?? 0) + n);
    for (const [table, n] of Object.entries(metadata.updated))
      this.updated.set(table, (this.updated.get(table) ?? 0) + n);
    this.rate.add(rows);
  }

  batches(stream: string): number {
    return this.#batches.get(stream) ?? 0;
  }

  /** Rows of the stream's batches 1..seq. */
  rowsThrough(stream: string, seq: number): number {
    const through = this.#rowsThrough.get(stream) ?? [0];
    return through[Math.min(seq, through.length - 1)] ?? 0;
  }
}

export function progressText(
  tally: DemoTally,
  statuses: readonly StreamStatus[],
  elapsedMs: number,
  durationMs: number,
  phase: string,
): string {
  const committed = statuses.reduce((sum, s) => sum + tally.rowsThrough(s.stream, s.committedSeq), 0);
  const streams = statuses.map(
    (s) =>
      `${shortName(s.stream)}: lag ${s.pending}${s.blocked ? ' BLOCKED' : ''}, hw ${watermarkText(s.highWatermark)}`,
  );
  return [
    `${phase} ${formatDuration(elapsedMs)}/${formatDuration(durationMs)}`,
    `sent ${formatCount(tally.rate.total)} rows (${formatCount(tally.rate.perSecond())}/s)`,
    `committed ${formatCount(committed)}`,
    ...streams,
  ].join(' · ');
}

export interface SummaryInput {
  readonly schema: string;
  readonly elapsedMs: number;
  readonly workers: readonly { readonly metricsPort: number | null; readonly logFile: string }[];
  readonly tableRows: ReadonlyMap<string, number>;
  readonly statuses: readonly StreamStatus[];
  readonly tally: DemoTally;
  readonly caughtUp: boolean;
}

export function summaryText(input: SummaryInput): string {
  const { tally, statuses } = input;
  const header = ['table', 'rows sent', 'inserted', 'updated', 'rows in table'];
  const rows = [...input.tableRows].map(([table, inTable]) => {
    const inserted = tally.inserted.get(table) ?? 0;
    const updated = tally.updated.get(table) ?? 0;
    return [
      `${input.schema}.${table}`,
      formatCount(inserted + updated),
      formatCount(inserted),
      formatCount(updated),
      formatCount(inTable),
    ];
  });
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] as string).length)));
  const line = (cells: string[]) =>
    `  ${cells.map((c, i) => (i === 0 ? c.padEnd(widths[i] ?? 0) : c.padStart(widths[i] ?? 0))).join('   ')}`;
  const metrics = input.workers.flatMap((w) =>
    w.metricsPort === null ? [] : [`http://localhost:${w.metricsPort}/metrics`],
  );
  const text = [
    '',
    `Demo summary: ${formatDuration(input.elapsedMs)}, schema ${input.schema}${input.caughtUp ? '' : ' (NOT caught up: some batches are still pending)'}`,
    line(header),
    ...rows.map(line),
    '',
    ...statuses.map(
      (s) =>
        `  stream ${s.stream}: ${tally.batches(s.stream)} batches enqueued, committed seq ${s.committedSeq}, lag ${s.pending}` +
        `, high watermark ${JSON.stringify(s.highWatermark)}${s.blocked ? `, BLOCKED at ${s.blocked.seq}: ${s.blocked.reason}` : ''}`,
    ),
    '',
    metrics.length > 0
      ? `Metrics:  ${metrics.join('  ')}`
      : "Metrics:  /metrics on each worker's METRICS_PORT (default 9464)",
    'Grafana:  http://localhost:3000 (when run with docker compose)',
    'Status:   pg-bulk-ingest status   (in the repository: npm run cli -- status)',
    ...(input.workers.length > 0 ? [`Worker logs: ${input.workers.map((w) => w.logFile).join(', ')}`] : []),
    '',
  ];
  return text.join('\n');
}

function shortName(stream: string): string {
  return stream.slice(stream.indexOf('.') + 1);
}

function watermarkText(hw: Json | null): string {
  const batch = (hw as { batch?: unknown } | null)?.batch;
  return typeof batch === 'number' ? `#${batch}` : JSON.stringify(hw);
}
