/** The locks a worker takes before applying a batch of a stream (G1, G5), and `rewind` takes too. */
import type pg from 'pg';
import type { IngestTable } from '../ingest/table-definition.ts';

/**
 * -- lock-stream-and-tables
 * Transaction-scoped advisory locks: first the stream's, then each table's in sorted order, so
 * two workers never wait on each other in a cycle (streams sharing a table take its lock in the
 * same global order). One statement: unnest yields the keys in array order. Released by COMMIT
 * or ROLLBACK, also when a worker dies. Lock keys are JSON arrays, so no two names share one.
 * Returns how long the locks took, in milliseconds.
 */
const LOCK_KEYS = `SELECT count(pg_advisory_xact_lock(hashtextextended(k, 0))) FROM unnest($1::text[]) AS k`;

export async function lockStreamAndTables(
  client: pg.ClientBase,
  stream: string,
  tables: readonly Pick<IngestTable, 'schema' | 'name'>[],
) {
  const start = performance.now();
  const tableKeys = [
    ...new Set(tables.map((t) => JSON.stringify(['pg-bulk-ingest table', t.schema, t.name]))),
  ];
  await client.query(LOCK_KEYS, [[JSON.stringify(['pg-bulk-ingest stream', stream]), ...tableKeys.sort()]]);
  return performance.now() - start;
}
