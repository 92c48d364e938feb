/**
 * `pg-bulk-ingest enqueue <file|->`: a CSV or NDJSON file (or stdin) into a stream, in batches of
 * `--batch-rows` rows, by file-enqueue.ts (as producers/file-producer.ts): each batch commits
 * atomically on its own; batches before a bad line are enqueued, and the error names the line
 * and column. Each batch's high watermark is the file position after it, so running again on
 * the same file, or on the file grown since, enqueues only the rows not enqueued yet.
 */
import { statSync } from 'node:fs';
import type { Command } from 'commander';
import { z } from 'zod';
import { PgBulkIngestError } from '../../errors.ts';
import { parseJson } from '../../ingest/exact-json.ts';
import { BadRows, Delete, type Json, Upsert } from '../../ingest/options.ts';
import { defaultOf } from '../../ingest/parse-options.ts';
import type { IngestTable } from '../../ingest/table-definition.ts';
import { Producer } from '../../queue/producer.ts';
import { producerOptionsSchema } from '../../queue/producer-options.ts';
import { numberSetting } from '../config.ts';
import {
  DEFAULT_FILE_BATCH_ROWS,
  enqueueFile,
  type FileEnqueueOptions,
  type FileEnqueueSummary,
} from '../file-enqueue.ts';
import { formatOf } from '../file-rows.ts';
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
  batchRows: z.coerce.number().int().min(1).default(DEFAULT_FILE_BATCH_ROWS),
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
    .option('--metadata <json>', 'batch metadata, as JSON (default null)')
    .option(
      '--upsert <mode>',
      'if-primary-key (rows replace those with the same key) or off (plain insert)',
      'if-primary-key',
    )
    .option(
      '--delete <mode>',
      "off, or before-first-batch (the whole file replaces the table's contents, even if enqueued before)",
      'off',
    )
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
        const summary = await enqueueWithProgress(producer, plan, showProgress);
        process.stdout.write(summaryText(summary));
      } finally {
        await producer.close();
      }
    }),
  );
}

/** What the flags ask for, checked before anything is read or enqueued. */
interface EnqueuePlan {
  readonly enqueue: FileEnqueueOptions;
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
  const maxBadRows = Number(flags.maxBadRows);
  if (!Number.isSafeInteger(maxBadRows) || maxBadRows < 0 || !/^\d+$/.test(String(flags.maxBadRows)))
    throw optionError(`--max-bad-rows: expected an integer >= 0, got "${String(flags.maxBadRows)}"`);
  const stream = flags.stream as string | undefined;
  const enqueue: FileEnqueueOptions = {
    path: file,
    read: {
      table,
      format: formatOf(file, flags.format as string | undefined),
      delimiter: (flags.delimiter as string | undefined) ?? (/\.tsv$/i.test(file) ? '\t' : ','),
      ignoreExtraColumns: flags.ignoreExtraColumns === true,
      keepBadValues: badRows === BadRows.QUARANTINE,
    },
    batchRows,
    metadata: jsonFlag(flags, 'metadata', '--metadata') ?? null,
    batchOptions: {
      upsert: choice(UPSERT, flags.upsert, '--upsert'),
      delete: choice(DELETE, flags.delete, '--delete'),
      badRows,
      maxBadRows,
    },
    ...(stream === undefined ? {} : { stream }),
  };
  return { enqueue, size };
}

/** enqueueFile, with a progress line on a terminal. */
async function enqueueWithProgress(
  producer: Producer,
  plan: EnqueuePlan,
  showProgress: boolean,
): Promise<FileEnqueueSummary> {
  const progress = new ProgressLine({ tty: showProgress });
  const rate = new RateMeter();
  const summary = await enqueueFile(producer, {
    ...plan.enqueue,
    onProgress: ({ source, stream, batches, bytesRead }, batchDone) => {
      if (!batchDone) rate.add(1);
      progress.update(progressText(source, stream, rate, batches, bytesRead, plan.size), batchDone);
    },
  });
  progress.clear();
  return summary;
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

function summaryText(summary: FileEnqueueSummary): string {
  const { results, rows, stream, source } = summary;
  if (results.length === 0)
    return `${startText(summary)}${summary.start === 'resumed' ? 'No new rows' : `No rows in ${source}`}: nothing enqueued\n`;
  const seqs = results.map((r) => r.seq);
  const duplicates = results.filter((r) => r.duplicate).length;
  return `${startText(summary)}Enqueued ${formatCount(rows)} rows in ${results.length} batch${results.length === 1 ? '' : 'es'} to stream ${stream} (seq ${Math.min(...seqs)}–${Math.max(...seqs)})${duplicates ? `, ${duplicates} already enqueued` : ''}\n`;
}

/** Why the file was read from where it was, when the stream had a position. */
function startText({ start, previous, source }: FileEnqueueSummary): string {
  if (previous === undefined) return '';
  const before = `${previous.file} up to line ${previous.line}`;
  if (start === 'resumed') return `Lines 1–${previous.line} of ${source} were enqueued before. `;
  if (start === 'other-content')
    return `Read from the first line: the stream's position is in other content (${before}). `;
  if (start === 'stdin')
    return `Read whole: stdin cannot be compared with what was enqueued before (${before}). `;
  return '';
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
