/**
 * A plain stream: batches of (marker, n, payload) rows into a table without a key, taking plain
 * inserts (a batch applied twice shows), with a commit log; and the check that the table holds
 * exactly the acknowledged batches, each once, committed in sequence order.
 */
import assert from 'node:assert/strict';
import { createHash, randomInt } from 'node:crypto';
import type pg from 'pg';
import type { Producer } from '../../src/index.ts';
import { defineTable, type IngestTable, ingest, Upsert } from '../../src/index.ts';
import { addCommitLog, commitOrder } from './commit-log.ts';

/** A batch of a plain-insert table, as sent: its marker, rows, and the seq enqueue gave it. */
export interface SentBatch {
  readonly marker: number;
  readonly rows: [marker: number, n: number, payload: string][];
  seq?: number;
}

/** Creates the stream's table (marker bigint, n integer, payload text), without a key, with a commit log. */
export async function createPlainStreamTable(
  db: pg.ClientBase,
  schema: string,
  name: string,
): Promise<IngestTable> {
  const columns = [
    { name: 'marker', type: 'bigint' },
    { name: 'n', type: 'integer' },
    { name: 'payload', type: 'text' },
  ];
  const t = defineTable({ schema, name, columns });
  await ingest(db, [t], () => []);
  await addCommitLog(db, schema, name);
  return t;
}

/** Batch `marker`: 1 to `maxRows` rows (marker, 0.., a random payload). */
export function plainBatch(marker: number, maxRows = 40): SentBatch {
  const rows = Array.from({ length: randomInt(1, maxRows + 1) }, (_, n) => [
    marker,
    n,
    `${marker}/${n}/${randomInt(1e9).toString(36)}`,
  ]);
  return { marker, rows: rows as SentBatch['rows'] };
}

/** Enqueues `batch` into `t` as plain inserts, the marker as its high watermark. */
export function enqueuePlain(producer: Producer, t: IngestTable, batch: SentBatch) {
  const rows = batch.rows.map((r) => [t, r] as const);
  return producer.enqueue({
    tables: [t],
    highWatermark: batch.marker,
    rows,
    options: { upsert: Upsert.OFF },
  });
}

/**
 * Checks a plain table against the batches acknowledged to the producer: every row exactly once
 * (count and md5 checksum of the contents), batches written in seq order (commit log). Returns
 * its row count and checksum.
 */
export async function verifyPlainStream(
  db: pg.ClientBase,
  schema: string,
  name: string,
  sent: readonly SentBatch[],
) {
  const expectedRows = sent.flatMap((b) => b.rows).sort((a, b) => a[0] - b[0] || a[1] - b[1]);
  const checksum = createHash('md5')
    .update(expectedRows.map((r) => r.join(':')).join(','))
    .digest('hex');
  const { rows } = await db.query<{ n: number; sum: string | null }>(
    `SELECT count(*)::int AS n, md5(string_agg(marker || ':' || n || ':' || payload, ',' ORDER BY marker, n)) AS sum
       FROM "${schema}"."${name}"`,
  );
  assert.equal(rows[0]?.n, expectedRows.length, `${name}: row count`);
  assert.equal(rows[0]?.sum, checksum, `${name}: content checksum`);
  const seqOf = new Map(sent.map((b) => [b.marker, b.seq as number]));
  const order = (await commitOrder(db, schema, name)).map((o) => seqOf.get(o.marker));
  const bySeq = sent.map((b) => b.seq as number).sort((a, b) => a - b);
  assert.deepEqual(order, bySeq, `${name}: batches did not commit in sequence order`);
  return { rows: expectedRows.length, checksum };
}
