/** `ingest()` plain insert (Upsert.OFF) into an empty table with a primary key. */
import pg from 'pg';
import { ingest, Upsert } from '../src/index.ts';
import { createEmptyTable } from './db.ts';
import { benchTable } from './generate-rows.ts';
import { benchBatches } from './ingest-batches.ts';
import type { NodeMethod } from './method.ts';

const method: NodeMethod = {
  id: 'ingest-insert',
  label: 'ingest() insert, Upsert.OFF',
  kind: 'node',
  targets: [{ of: 'psql-copy', atLeast: 0.85 }, { maxRssMb: 150 }],
  setup: createEmptyTable,
  async run(ctx) {
    const client = new pg.Client({ connectionString: ctx.databaseUrl });
    await client.connect();
    try {
      const table = benchTable(ctx.schema);
      await ingest(client, [table], benchBatches(ctx, table), { upsert: Upsert.OFF });
    } finally {
      await client.end();
    }
    return ctx.rows;
  },
};
export default method;
