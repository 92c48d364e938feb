/** For contrast: multi-row `INSERT ... VALUES` with `pg`, 1000 rows (5000 parameters) per statement. */
import pg from 'pg';
import { createEmptyTable, tableOf } from './db.ts';
import { COLUMN_NAMES, generateBatches } from './generate-rows.ts';
import type { NodeMethod } from './method.ts';

const ROWS_PER_STATEMENT = 1000;

function insertSql(table: string, rows: number): string {
  const tuples: string[] = [];
  for (let r = 0; r < rows; r++) {
    const p = r * COLUMN_NAMES.length;
    tuples.push(`($${p + 1}, $${p + 2}, $${p + 3}, $${p + 4}, $${p + 5})`);
  }
  return `INSERT INTO ${table} (${COLUMN_NAMES.join(', ')}) VALUES ${tuples.join(', ')}`;
}

const method: NodeMethod = {
  id: 'naive-insert',
  label: `pg multi-row INSERT (${ROWS_PER_STATEMENT}/statement)`,
  kind: 'node',
  maxRows: 100_000,
  setup: createEmptyTable,
  async run(ctx) {
    const client = new pg.Client({ connectionString: ctx.databaseUrl });
    await client.connect();
    const table = tableOf(ctx);
    const fullSql = insertSql(table, ROWS_PER_STATEMENT);
    try {
      for (const batch of generateBatches(ctx.seed, ctx.rows, ctx.batchSize)) {
        await client.query('BEGIN');
        let params: unknown[] = [];
        const flush = async () => {
          const rows = params.length / COLUMN_NAMES.length;
          // A named statement is parsed once and reused: the best case for this method.
          const name = rows === ROWS_PER_STATEMENT ? 'bench_insert' : undefined;
          await client.query({
            text: rows === ROWS_PER_STATEMENT ? fullSql : insertSql(table, rows),
            values: params,
            ...(name ? { name } : {}),
          });
          params = [];
        };
        for (const [id, at, name, amount, payload] of batch.rows()) {
          // Timestamps as ISO text, as the COPY methods send them (pg would send a Date in local time).
          params.push(id, at.toISOString(), name, amount, JSON.stringify(payload));
          if (params.length === ROWS_PER_STATEMENT * COLUMN_NAMES.length) await flush();
        }
        if (params.length > 0) await flush();
        await client.query('COMMIT');
      }
    } finally {
      await client.end();
    }
    return ctx.rows;
  },
};
export default method;
