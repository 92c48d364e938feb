/**
 * The README's library example: ingest two rows into my_schema.my_table on the local PostgreSQL, then run
 * again and see that the high watermark makes the second run a no-op.
 *   DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres npm run example
 */
import pg from 'pg';
import { defineTable, HighWatermark, ingest, type Json, Upsert } from '../src/index.ts';

const myTable = defineTable({
  schema: 'my_schema',
  name: 'my_table',
  columns: [
    { name: 'id', type: 'integer', primaryKey: true },
    { name: 'value', type: 'varchar(16)', nullable: false },
  ],
  indexes: [{ columns: ['value'] }],
});

function* batches(highWatermark: Json | null) {
  if (highWatermark === null || '2015-01-01' > (highWatermark as string)) {
    yield [
      '2015-01-01',
      'Any batch metadata',
      [
        [myTable, [3, 'a']],
        [myTable, [4, 'b']],
      ],
    ] as const;
  }
}

const client = new pg.Client({
  connectionString: process.env.DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres',
});
await client.connect();
try {
  await ingest(client, [myTable], batches, {
    highWatermark: HighWatermark.LATEST,
    upsert: Upsert.IF_PRIMARY_KEY,
  });
  const { rows } = await client.query('SELECT * FROM my_schema.my_table ORDER BY id');
  const comment = await client.query(
    `SELECT obj_description('my_schema.my_table'::regclass, 'pg_class') AS c`,
  );
  console.log(rows, comment.rows[0]?.c);
} finally {
  await client.end();
}
