/** `ingest()` upsert (Upsert.IF_PRIMARY_KEY) into a table already holding every key: all rows conflict. */
import pg from 'pg';
import { ingest, Upsert } from '../src/index.ts';
import { createPrefilledTable } from './db.ts';
import { benchTable } from './generate-rows.ts';
import { benchBatches } from './ingest-batches.ts';
import type { NodeMethod } from './method.ts';

const method: NodeMethod = {
  id: 'ingest-upsert',
  label: 'ingest() upsert, all conflicts',
  kind: 'node',
  reference: 'copy-upsert',
  targets: [{ of: 'copy-upsert', atLeast: 0.85 }, { maxRssMb: 150 }],
  setup: createPrefilledTable,
  async run(ctx) {
    const client = new pg.Client({ connectionString: ctx.databaseUrl });
    await client.connect();
    try {
      const table = benchTable(ctx.schema);
      await ingest(client, [table], benchBatches(ctx, table), { upsert: Upsert.IF_PRIMARY_KEY });
    } finally {
      await client.end();
    }
    return ctx.rows;
  },
};
export default method;
