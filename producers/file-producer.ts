/**
 * Example producer: a CSV or NDJSON file into a stream, resumable.
 *
 *   REDIS_URL=redis://127.0.0.1:6379 node --import tsx producers/file-producer.ts events.ndjson table.json [batchRows]
 *
 * `table.json` is a table definition as `defineTable` takes it. It runs what `pg-bulk-ingest
 * enqueue` runs (src/ops/file-enqueue.ts): each batch's high watermark is the position in the file
 * after it (`{ file, line, bytes, sha256 }`), so re-running on the same file, or on a file that
 * has grown since (an append-only log), sends only the rows after it; a file whose content up to
 * that position differs is sent from its first line. Rows are read, converted per column type
 * and checked by src/ops/file-rows.ts, so a bad value is reported with its line and column before
 * anything of its batch is enqueued.
 */
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { defineTable, type IngestTable } from '../src/index.ts';
import { enqueueFile } from '../src/ops/file-enqueue.ts';
import { type FileFormat, formatOf } from '../src/ops/file-rows.ts';
import { type EnqueueResult, Producer } from '../src/queue/producer.ts';

export interface FileProducerOptions {
  /** @default from the file extension */
  readonly format?: FileFormat;
  /** @default DEFAULT_FILE_BATCH_ROWS (10000) */
  readonly batchRows?: number;
}

/** Enqueues the rows of `path` after the stream's position; returns one result per batch. */
export async function produceFile(
  producer: Producer,
  table: IngestTable,
  path: string,
  options: FileProducerOptions = {},
): Promise<EnqueueResult[]> {
  const { results } = await enqueueFile(producer, {
    path,
    read: { table, format: options.format ?? formatOf(path) },
    ...(options.batchRows === undefined ? {} : { batchRows: options.batchRows }),
  });
  return [...results];
}

async function main(argv: string[]) {
  const [path, tableFile, batchRows] = argv;
  if (!path || !tableFile) {
    process.stderr.write(
      'usage: node --import tsx producers/file-producer.ts <file.csv|file.ndjson> <table.json> [batchRows]\n',
    );
    process.exit(2);
  }
  const table = defineTable(JSON.parse(readFileSync(tableFile, 'utf8')));
  // The example reads REDIS_URL (and PGBI_QUEUE, PGBI_PREFIX) as the CLI does; the library itself reads no environment.
  const producer = new Producer({
    redis: process.env.REDIS_URL ?? 'redis://127.0.0.1:6379',
    ...(process.env.PGBI_QUEUE ? { queueName: process.env.PGBI_QUEUE } : {}),
    ...(process.env.PGBI_PREFIX ? { prefix: process.env.PGBI_PREFIX } : {}),
  });
  try {
    const results = await produceFile(producer, table, path, {
      ...(batchRows ? { batchRows: Number(batchRows) } : {}),
    });
    const seqs = results.map((r) => r.seq);
    process.stdout.write(
      results.length === 0
        ? 'Nothing new to enqueue\n'
        : `Enqueued ${results.length} batches to ${results[0]?.stream} (seq ${seqs[0]}–${seqs.at(-1)})\n`,
    );
  } finally {
    await producer.close();
  }
}

if (process.argv[1] && import.meta.url === pathToFileURL(resolve(process.argv[1])).href)
  await main(process.argv.slice(2));
