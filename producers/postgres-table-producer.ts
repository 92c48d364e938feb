/**
 * Example producer: an incremental copy of a source PostgreSQL table, by high watermark.
 *
 *   SOURCE_URL=postgres://... REDIS_URL=redis://... \
 *     node --import tsx producers/postgres-table-producer.ts <source_schema.table> <target_schema>
 *
 * The high watermark is the `(updated_at, id)` of the last row sent. Each run reads it with
 * `producer.highWatermark(table)` (the last one enqueued, else the last committed), selects the
 * rows strictly after it in (updated_at, id) order, a batch at a time by keyset pagination, and
 * enqueues each batch with its last (updated_at, id) as the watermark. Re-running sends only
 * what is new or changed; upsert on the primary key applies changes to rows sent before.
 *
 * What the source must give: an `updated_at` set on every insert and update (a trigger), NOT
 * NULL, ideally with an index on (updated_at, id). Deletes are not seen, and a row committed
 * later with an older updated_at (a long transaction) is missed: run against a replica with a
 * small delay, or re-copy with Delete.BEFORE_FIRST_BATCH now and then.
 */
import { resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import pg from 'pg';
import { defineTable, type IngestTable, type Json, type Row } from '../src/index.ts';
import { type EnqueueResult, Producer } from '../src/queue/producer.ts';

export interface TableCopyOptions {
  /** A connected client on the source database. */
  readonly source: pg.ClientBase;
  readonly sourceTable: { readonly schema: string; readonly name: string };
  /** The destination; its columns are selected by name from the source. */
  readonly target: IngestTable;
  /** @default 'updated_at' */
  readonly updatedAtColumn?: string;
  /** @default 'id' */
  readonly idColumn?: string;
  /** @default 10000 */
  readonly batchRows?: number;
}

export interface CopyWatermark {
  readonly [key: string]: Json;
  /** The source's own text for the timestamp: microseconds survive the round trip. */
  readonly updatedAt: string;
  readonly id: string;
}

/** Time types as PostgreSQL's text (a JavaScript Date would drop microseconds); the rest as pg parses them. */
const AS_TEXT = new Set([1082, 1083, 1114, 1184, 1186, 1266]); // date, time, timestamp, timestamptz, interval, timetz
const types = {
  getTypeParser: ((oid: number, format?: 'text' | 'binary') =>
    AS_TEXT.has(oid)
      ? (value: string) => value
      : pg.types.getTypeParser(oid, format)) as typeof pg.types.getTypeParser,
};

/** Enqueues the source rows after the stream's watermark; returns one result per batch. */
export function copyNewRows(producer: Producer, options: TableCopyOptions): Promise<EnqueueResult[]> {
  const { source, sourceTable, target } = options;
  const q = (name: string) => `"${name.replaceAll('"', '""')}"`;
  const updatedAt = q(options.updatedAtColumn ?? 'updated_at');
  const id = q(options.idColumn ?? 'id');
  const columns = target.columns.map((c) => q(c.name)).join(', ');
  // -- select-after-watermark: the next batch by keyset, after the last (updated_at, id) sent if any.
  const select = (after: CopyWatermark | null) => ({
    text: `SELECT ${columns}, ${updatedAt}::text AS "__hw_updated_at", ${id}::text AS "__hw_id"
      FROM ${q(sourceTable.schema)}.${q(sourceTable.name)}
      ${after ? `WHERE (${updatedAt}, ${id}) > ($2, $3)` : ''}
      ORDER BY ${updatedAt}, ${id} LIMIT $1`,
    values: [options.batchRows ?? 10_000, ...(after ? [after.updatedAt, after.id] : [])],
    types,
  });
  return producer.ingest([target], async function* (highWatermark: Json | null) {
    let after = highWatermark as CopyWatermark | null;
    for (;;) {
      const { rows } = await source.query(select(after));
      const last = rows.at(-1);
      if (!last) return;
      after = { updatedAt: last.__hw_updated_at, id: last.__hw_id };
      const batch: Row[] = rows.map((row) => [target, target.columns.map((c) => row[c.name])]);
      yield [after, { source: `${sourceTable.schema}.${sourceTable.name}` }, batch];
    }
  });
}

/** The source table's definition (columns, types, NOT NULL, primary key) under another schema. */
export async function describeTable(
  source: pg.ClientBase,
  table: { schema: string; name: string },
  targetSchema: string,
): Promise<IngestTable> {
  const { rows } = await source.query<{ name: string; type: string; notnull: boolean; pk: boolean }>(
    `SELECT a.attname AS name, format_type(a.atttypid, a.atttypmod) AS type, a.attnotnull AS notnull,
            coalesce(a.attnum = ANY(i.indkey), false) AS pk
     FROM pg_attribute a
     LEFT JOIN pg_index i ON i.indrelid = a.attrelid AND i.indisprimary
     WHERE a.attrelid = format('%I.%I', $1::text, $2::text)::regclass AND a.attnum > 0 AND NOT a.attisdropped
     ORDER BY a.attnum`,
    [table.schema, table.name],
  );
  return defineTable({
    schema: targetSchema,
    name: table.name,
    columns: rows.map((r) => ({ name: r.name, type: r.type, nullable: !r.notnull, primaryKey: r.pk })),
  });
}

async function main(argv: string[]) {
  const [qualified, targetSchema] = argv;
  const [schema, name] = qualified?.split('.') ?? [];
  if (!schema || !name || !targetSchema) {
    process.stderr.write(
      'usage: SOURCE_URL=postgres://... node --import tsx producers/postgres-table-producer.ts <schema.table> <target_schema>\n',
    );
    process.exit(2);
  }
  const source = new pg.Client({
    connectionString:
      process.env.SOURCE_URL ?? process.env.DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres',
  });
  await source.connect();
  // The example reads REDIS_URL (and PGBI_QUEUE, PGBI_PREFIX) as the CLI does; the library itself reads no environment.
  const producer = new Producer({
    redis: process.env.REDIS_URL ?? 'redis://127.0.0.1:6379',
    ...(process.env.PGBI_QUEUE ? { queueName: process.env.PGBI_QUEUE } : {}),
    ...(process.env.PGBI_PREFIX ? { prefix: process.env.PGBI_PREFIX } : {}),
  });
  try {
    const target = await describeTable(source, { schema, name }, targetSchema);
    const results = await copyNewRows(producer, { source, sourceTable: { schema, name }, target });
    process.stdout.write(
      results.length === 0
        ? 'Nothing new since the last run\n'
        : `Enqueued ${results.length} batches to ${results[0]?.stream}\n`,
    );
  } finally {
    await producer.close();
    await source.end();
  }
}

if (process.argv[1] && import.meta.url === pathToFileURL(resolve(process.argv[1])).href)
  await main(process.argv.slice(2));
