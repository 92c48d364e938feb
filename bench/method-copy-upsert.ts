/**
 * The upsert reference, written by hand: per batch of 100,000 rows, one transaction with
 * COPY into a temporary staging table, then `INSERT ... SELECT ... ON CONFLICT (id) DO UPDATE`.
 * Rows are encoded by the bench's own `copyLine` and sent in chunks of 16 Ki characters (a string
 * of 64 Ki two-byte characters is several times slower to turn into bytes: see batch-rows.ts).
 */
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import pg from 'pg';
import { from as copyFrom } from 'pg-copy-streams';
import { createPrefilledTable, tableOf } from './db.ts';
import { COLUMN_NAMES, copyLine, generateBatches, type RowBatch } from './generate-rows.ts';
import type { NodeMethod } from './method.ts';

function* chunks(batch: RowBatch): Generator<string> {
  let chunk = '';
  for (const row of batch.rows()) {
    chunk += copyLine(row);
    if (chunk.length >= 16 * 1024) {
      yield chunk;
      chunk = '';
    }
  }
  if (chunk.length > 0) yield chunk;
}

const method: NodeMethod = {
  id: 'copy-upsert',
  label: 'COPY to staging + ON CONFLICT (hand-written)',
  kind: 'node',
  setup: createPrefilledTable,
  async run(ctx) {
    const client = new pg.Client({ connectionString: ctx.databaseUrl });
    await client.connect();
    const target = tableOf(ctx);
    const columns = COLUMN_NAMES.join(', ');
    const updates = COLUMN_NAMES.filter((c) => c !== 'id')
      .map((c) => `${c} = EXCLUDED.${c}`)
      .join(', ');
    try {
      for (const batch of generateBatches(ctx.seed, ctx.rows, ctx.batchSize)) {
        await client.query('BEGIN');
        await client.query(
          'CREATE TEMPORARY TABLE staging (id bigint NOT NULL, at timestamp, name varchar(64), amount numeric(12,2), payload jsonb) ON COMMIT DROP',
        );
        await pipeline(
          Readable.from(chunks(batch), { objectMode: false }),
          client.query(copyFrom(`COPY staging (${columns}) FROM STDIN`)),
        );
        await client.query(
          `INSERT INTO ${target} (${columns}) SELECT ${columns} FROM staging ON CONFLICT (id) DO UPDATE SET ${updates}`,
        );
        await client.query('COMMIT');
      }
    } finally {
      await client.end();
    }
    return ctx.rows;
  },
};
export default method;
