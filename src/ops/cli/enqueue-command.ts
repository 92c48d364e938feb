/**
 * `pg-bulk-ingest enqueue <file|->`: a CSV or NDJSON file (or stdin) into a stream, in batches of
 * `--batch-rows` rows. Each batch commits atomically on its own; batches before a bad line are
 * enqueued, and the error names the line and column. The high watermark given with
 * `--high-watermark` goes with the last batch only, so the stream's watermark moves once the
 * whole file is in; earlier batches carry the watermark the stream already had.
 */
import { type ReadStream, statSync } from 'node:fs';
import type { Command } from 'commander';
import { z } from 'zod';
import { PgBulkIngestError } from '../../errors.ts';
import { parseJson } from '../../ingest/exact-json.ts';
import { BadRows, Delete, type Json, Upsert } from '../../ingest/options.ts';
import { defaultOf } from '../../ingest/parse-options.ts';
import type { IngestTable } from '../../ingest/table-definition.ts';
import { tableKey } from '../../queue/batch-contract.ts';
import { type EnqueueResult, Producer } from '../../queue/producer.ts';
import { producerOptionsSchema } from '../../queue/producer-options.ts';
import { numberSetting } from '../config.ts';
import { type FileRowsOptions, formatOf, openInput, readFileRows } from '../file-rows.ts';
import { formatBytes, formatCount, ProgressLine, RateMeter } from '../progress.ts';
import { addSettings, configFrom, runCommand, withDefaults } from './common.ts';
import {
  BACKPRESSURE_SETTINGS,
  PRODUCER_CONNECTION_SETTINGS,
  producerConfigSchema,
  producerOptionsOf,
} from './producer-settings.ts';
import { tableFrom } from './table-flags.ts';

export const enqueueConfigSchema = producerConfigSchema.extend({
  backpressureTimeoutMs: numberSetting(producerOptionsSchema.shape.backpressureTimeoutMs),
  batchRows: z.coerce.number().int().min(1).default(10_000),
});

export const ENQUEUE_SETTINGS = {
  ...PRODUCER_CONNECTION_SETTINGS,
  ...BACKPRESSURE_SETTINGS,
  ...withDefaults(enqueueConfigSchema.shape, {
    backpressureTimeoutMs: [
      '--backpressure-timeout-ms <ms>',
      'BACKPRESSURE_TIMEOUT_MS',
      'under backpressure, wait this long for room before failing',
    ],
  } as const),
};

const UPSERT = { 'if-primary-key': Upsert.IF_PRIMARY_KEY, off: Upsert.OFF } as const;
const DELETE = { off: Delete.OFF, 'before-first-batch': Delete.BEFORE_FIRST_BATCH } as const;
const BAD_ROWS = { fail: BadRows.FAIL, quarantine: BadRows.QUARANTINE } as const;

export function registerEnqueueCommand(program: Command): void {
  const command = program
    .command('enqueue <file>')
    .description(
      'Enqueue a CSV (with a header row) or NDJSON file, or stdin with "-", into a stream, in batches',
    )
    .option(
      '--table-file <path>',
      'the table as JSON, as defineTable() takes it: {"schema","name","columns":[...],"indexes":[...]}',
    )
    .option('--schema <name>', "the table's schema (with --table and --columns)")
    .option('--table <name>', "the table's name")
    .option(
      '--columns <spec>',
      'columns as name:type[:pk|:notnull|:unique|:index], comma-separated, e.g. "id:bigint:pk,name:text,price:numeric(12,2)"',
    )
    .option(
      '--format <format>',
      'csv or ndjson (default: from the file extension: .csv/.tsv, .ndjson/.jsonl)',
    )
    .option('--delimiter <char>', 'CSV field delimiter (default "," or a tab for .tsv)')
    .option(
      '--ignore-extra-columns',
      'skip CSV columns / NDJSON keys that are not in the table instead of failing',
    )
    .option(
      '--batch-rows <n>',
      `rows per batch; each batch commits atomically (default ${defaultOf(enqueueConfigSchema.shape.batchRows)})`,
    )
    .option(
      '--high-watermark <json>',
      'the high watermark stored with the last batch, as JSON (default: unchanged)',
    )
    .option('--metadata <json>', 'batch metadata, as JSON (default null)')
    .option(
      '--upsert <mode>',
      'if-primary-key (rows replace those with the same key) or off (plain insert)',
      'if-primary-key',
    )
    .option('--delete <mode>', "off, or before-first-batch (the file replaces the table's contents)", 'off')
    .option(
      '--bad-rows <mode>',
      'fail (a refused row fails its batch) or quarantine (refused rows go to bulk_ingest.rejected_rows, the others commit)',
      'fail',
    )
    .option(
      '--max-bad-rows <n>',
      'with --bad-rows quarantine: more refused rows than this fail the batch',
      '1000',
    )
    .option('--stream <name>', 'the stream (default "<schema>.<table>")')
    .option('--no-progress', 'no progress line (it is only drawn when stderr is a terminal)');
  addSettings(command, ENQUEUE_SETTINGS).action((file: string, flags: Record<string, unknown>) =>
    runCommand(async () => {
      const config = configFrom(enqueueConfigSchema, ENQUEUE_SETTINGS, flags, {
        flagsOnly: { batchRows: '--batch-rows' },
      });
      const plan = planFrom(flags, tableFrom(flags), file, config.batchRows);
      const producer = new Producer(producerOptionsOf(config, config.backpressureTimeoutMs));
      try {
        const showProgress = flags.progress !== false && process.stderr.isTTY === true;
        const summary = await enqueueFile(producer, file, plan, showProgress);
        process.stdout.write(summaryText(summary, file));
      } finally {
        await producer.close();
      }
    }),
  );
}

interface EnqueueSummary {
  readonly stream: string;
  readonly rows: number;
  readonly results: readonly EnqueueResult[];
}

/** What the flags ask for, checked before anything is read or enqueued. */
interface EnqueuePlan {
  readonly rowOptions: FileRowsOptions;
  readonly stream: string;
  /** For the last batch; undefined leaves the stream's watermark as it is. */
  readonly finalWatermark: Json | undefined;
  readonly metadata: Json;
  readonly upsert: Upsert;
  readonly deleteMode: Delete;
  readonly badRows: BadRows;
  readonly maxBadRows: number;
  readonly batchRows: number;
  /** The file's size, for the progress line; undefined for stdin. */
  readonly size: number | undefined;
}

function planFrom(
  flags: Record<string, unknown>,
  table: IngestTable,
  file: string,
  batchRows: number,
): EnqueuePlan {
  let size: number | undefined;
  if (file !== '-') {
    try {
      size = statSync(file).size;
    } catch (error) {
      throw optionError(`Cannot read ${file}: ${(error as Error).message}`);
    }
  }
  const badRows = choice(BAD_ROWS, flags.badRows, '--bad-rows');
  const rowOptions: FileRowsOptions = {
    table,
    format: formatOf(file, flags.format as string | undefined),
    source: file === '-' ? 'stdin' : file,
    delimiter: (flags.delimiter as string | undefined) ?? (/\.tsv$/i.test(file) ? '\t' : ','),
    ignoreExtraColumns: flags.ignoreExtraColumns === true,
    keepBadValues: badRows === BadRows.QUARANTINE,
  };
  const maxBadRows = Number(flags.maxBadRows);
  if (!Number.isSafeInteger(maxBadRows) || maxBadRows < 0 || !/^\d+$/.test(String(flags.maxBadRows)))
    throw optionError(`--max-bad-rows: expected an integer >= 0, got "${String(flags.maxBadRows)}"`);
  return {
    rowOptions,
    stream: (flags.stream as string | undefined) ?? tableKey(table),
    finalWatermark: jsonFlag(flags, 'highWatermark', '--high-watermark'),
    metadata: jsonFlag(flags, 'metadata', '--metadata') ?? null,
    upsert: choice(UPSERT, flags.upsert, '--upsert'),
    deleteMode: choice(DELETE, flags.delete, '--delete'),
    badRows,
    maxBadRows,
    batchRows,
    size,
  };
}

/**
 * Reads the file once, streaming: each batch's rows go to the producer as they are read (it
 * uploads them in parts), so memory holds a part, not a batch.
 */
async function enqueueFile(
  producer: Producer,
  file: string,
  plan: EnqueuePlan,
  showProgress: boolean,
): Promise<EnqueueSummary> {
  const { table, source } = plan.rowOptions;
  const startWatermark = await producer.highWatermark(table, plan.stream);
  const input = openInput(file);
  const rows = readFileRows(input, plan.rowOptions)[Symbol.asyncIterator]();
  const progress = new ProgressLine({ tty: showProgress });
  const rate = new RateMeter();
  const results: EnqueueResult[] = [];
  const show = (force = false) => {
    const bytesRead = (input as Partial<ReadStream>).bytesRead;
    progress.update(progressText(source, plan.stream, rate, results.length, bytesRead, plan.size), force);
  };
  let next = await rows.next();
  while (!next.done) {
    async function* batch() {
      for (let n = 0; n < plan.batchRows && !next.done; n++) {
        yield [table, next.value.values] as const;
        rate.add(1);
        show();
        next = await rows.next();
      }
    }
    const first = results.length === 0;
    const result = await producer.enqueue(
      {
        tables: [table],
        // Called once the batch's rows are read: only the last batch moves the watermark.
        highWatermark: () =>
          next.done && plan.finalWatermark !== undefined ? plan.finalWatermark : startWatermark,
        metadata: plan.metadata,
        rows: batch(),
        // Like ingest(): the table is replaced before the first batch, not before each one.
        options: {
          upsert: plan.upsert,
          delete: first ? plan.deleteMode : Delete.OFF,
          badRows: plan.badRows,
          maxBadRows: plan.maxBadRows,
        },
        stream: plan.stream,
      },
      `Batch ${results.length + 1}`,
    );
    results.push(result);
    show(true);
  }
  progress.clear();
  return { stream: plan.stream, rows: rate.total, results };
}

function progressText(
  source: string,
  stream: string,
  rate: RateMeter,
  batches: number,
  bytesRead: number | undefined,
  size: number | undefined,
): string {
  const share =
    size && bytesRead !== undefined
      ? ` ${Math.floor((100 * bytesRead) / size)}% of ${formatBytes(size)},`
      : '';
  return `${source} → ${stream}:${share} ${formatCount(rate.total)} rows in ${batches} batches enqueued, ${formatCount(rate.perSecond())} rows/s`;
}

function summaryText(summary: EnqueueSummary, file: string): string {
  const { results, rows, stream } = summary;
  if (results.length === 0) return `No rows in ${file === '-' ? 'stdin' : file}: nothing enqueued\n`;
  const seqs = results.map((r) => r.seq);
  const duplicates = results.filter((r) => r.duplicate).length;
  return `Enqueued ${formatCount(rows)} rows in ${results.length} batch${results.length === 1 ? '' : 'es'} to stream ${stream} (seq ${Math.min(...seqs)}–${Math.max(...seqs)})${duplicates ? `, ${duplicates} already enqueued` : ''}\n`;
}

function jsonFlag(flags: Record<string, unknown>, key: string, flag: string): Json | undefined {
  const text = flags[key];
  if (typeof text !== 'string') return undefined;
  try {
    return parseJson(text) as Json; // exact: --high-watermark 1234567890123456789 keeps its digits
  } catch (error) {
    throw optionError(
      `${flag}: not valid JSON (${(error as Error).message}); quote a string as '"2024-01-01"'`,
    );
  }
}

function choice<T>(choices: Record<string, T>, value: unknown, flag: string): T {
  const found = choices[String(value)];
  if (found === undefined)
    throw optionError(`${flag}: expected ${Object.keys(choices).join(' or ')}, got "${String(value)}"`);
  return found;
}

function optionError(message: string): PgBulkIngestError {
  return new PgBulkIngestError('INVALID_OPTIONS', message);
}
