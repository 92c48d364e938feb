/**
 * A worker killed (SIGKILL) while it isolates a batch's bad rows: nothing of the batch was
 * committed, so the next worker applies it whole, and each bad row is quarantined exactly once.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { BadRows, Producer, Upsert } from '../../src/index.ts';
import { withQueueFixture } from '../helpers/queue-fixture.ts';
import { committedSeqs } from '../helpers/stream-state.ts';
import { eventsTable, rowsWithThreeBad } from '../helpers/tables.ts';
import { waitUntil } from '../helpers/wait.ts';

describe('quarantine and a killed worker', () => {
  it('a worker killed mid-isolation quarantines nothing twice', { timeout: 120_000 }, async () => {
    await withQueueFixture('quarantine_kill', async ({ schema, connection, fleet, db }) => {
      const table = eventsTable(schema);
      const stream = `${schema}.events`;
      const rows = rowsWithThreeBad(table, 100_000); // bad: rows 10,000, 50,000 and 90,000
      const producer = new Producer({ redis: connection.redisUrl, ...connection });
      try {
        await producer.enqueue({
          tables: [table],
          highWatermark: 'h',
          rows,
          options: { badRows: BadRows.QUARANTINE, upsert: Upsert.OFF },
        });
      } finally {
        await producer.close();
      }
      const first = fleet.start({ LOG_LEVEL: 'info' }, 'first');
      // Isolation is the only time a worker's session runs statements on savepoint pgbi_rows.
      const deadline = Date.now() + 60_000;
      let isolating = false;
      while (!isolating && Date.now() < deadline) {
        const found = await db.query(
          `SELECT 1 FROM pg_stat_activity WHERE datname = current_database() AND query LIKE '%pgbi_rows%' AND pid <> pg_backend_pid()`,
        );
        isolating = (found.rowCount ?? 0) > 0;
        if (!isolating) await sleep(2);
      }
      assert.ok(isolating, 'the worker was seen isolating bad rows');
      await first.kill();
      assert.equal((await committedSeqs(db, [stream])).get(stream), 0, 'killed before its commit');
      fleet.start({ LOG_LEVEL: 'info' }, 'second');
      await waitUntil(
        'the batch committed',
        async () => (await committedSeqs(db, [stream])).get(stream) === 1,
        { timeoutMs: 60_000 },
      );
      const count = await db.query(`SELECT count(*)::int AS n FROM "${schema}".events`);
      assert.equal(count.rows[0]?.n, 99_997);
      const rejected = await db.query(
        'SELECT row_number::int AS n, sqlstate FROM bulk_ingest.rejected_rows WHERE stream = $1 ORDER BY row_number',
        [stream],
      );
      assert.deepEqual(
        rejected.rows.map((r) => [r.n, r.sqlstate]),
        [
          [10_000, null], // refused by the Producer's validation: quarantined unsent
          [50_000, null],
          [90_000, '23505'], // refused by PostgreSQL: isolated by the worker
        ],
      );
    });
  });
});
