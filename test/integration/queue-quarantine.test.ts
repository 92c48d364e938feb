/**
 * BadRows.QUARANTINE through the queue: a batch's refused rows are quarantined by the worker
 * with their stream, seq and row number (the Producer lets a bad value through, and the worker
 * gives the Producer's reason); replay after a fix in SQL commits the row exactly once.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type pg from 'pg';
import { BadRows, defineTable, type Row, StreamAdmin, Upsert } from '../../src/index.ts';
import { connect, dropSchema, uniqueName } from '../helpers/pg.ts';
import { inProcessQueue, REDIS_URL, waitFor } from '../helpers/queue.ts';

describe('queue with BadRows.QUARANTINE', () => {
  const queue = inProcessQueue();
  const schema = uniqueName('queue_quarantine');
  let db: pg.Client;
  let admin: StreamAdmin;
  before(async () => {
    db = await connect();
    admin = new StreamAdmin({
      databaseUrl: process.env.TEST_DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/test',
      redis: REDIS_URL,
      ...queue.names,
    });
  });
  after(async () => {
    await admin.close();
    await db.end();
    await dropSchema(schema);
  });
  const table = defineTable({
    schema,
    name: 'events',
    columns: [
      { name: 'id', type: 'integer', primaryKey: true },
      { name: 'at', type: 'timestamptz' },
      { name: 'label', type: 'text', nullable: false },
    ],
  });
  const stream = `${schema}.events`;
  const count = async () =>
    Number((await db.query(`SELECT count(*) AS n FROM "${schema}".events`)).rows[0]?.n);

  it('a 10,000-row batch with a bad timestamp, a NULL in a NOT NULL column and a duplicate key: 9,997 rows committed, 3 quarantined with seq and row number, high watermark moved', async () => {
    const rows = Array.from({ length: 10_000 }, (_, i): Row => {
      const n = i + 1;
      if (n === 1000) return [table, [n, 'not a time', 'x']];
      if (n === 5000) return [table, [n, null, null]];
      if (n === 9000) return [table, [10, null, 'duplicate of row 10']];
      return [table, [n, null, `row ${n}`]];
    });
    const { seq } = await queue.producer.enqueue({
      tables: [table],
      highWatermark: 'hwm-1',
      rows,
      options: { badRows: BadRows.QUARANTINE, upsert: Upsert.OFF },
    });
    await waitFor(async () => (await admin.status(stream))[0]?.committedSeq === seq, 30_000, 'the batch');
    assert.equal(await count(), 9_997);
    const rejected = await admin.rejected(stream);
    assert.deepEqual(
      rejected.map((r) => [r.seq, r.rowNumber, r.sqlState, r.tableName]),
      [
        [seq, 1000, '22007', 'events'],
        [seq, 5000, '23502', 'events'],
        [seq, 9000, '23505', 'events'],
      ],
    );
    // The Producer's validation let the NULL through; the worker gives its reason.
    assert.match(rejected[1]?.message ?? '', /column "label" \(text\): is null, but the column is NOT NULL/);
    assert.deepEqual(rejected[1]?.row, [5000, null, null]);
    assert.equal((await admin.status(stream))[0]?.highWatermark, 'hwm-1');
  });

  it('replay after fixing one row in SQL commits it exactly once and marks it replayed', async () => {
    const [, nullRow] = await admin.rejected(stream);
    assert.ok(nullRow);
    await db.query(
      `UPDATE bulk_ingest.rejected_rows SET "row" = jsonb_set("row", '{2}', '"fixed"') WHERE id = $1`,
      [nullRow.id],
    );
    const { seq, ids } = await admin.replay(stream, { ids: [nullRow.id] });
    assert.deepEqual(ids, [nullRow.id]);
    await waitFor(async () => (await admin.status(stream))[0]?.committedSeq === seq, 30_000, 'the replay');
    const rows = await db.query(`SELECT label FROM "${schema}".events WHERE id = 5000`);
    assert.deepEqual(rows.rows, [{ label: 'fixed' }]);
    const after = await admin.rejected(stream);
    assert.ok(after.find((r) => r.id === nullRow.id)?.replayedAt instanceof Date);
    assert.equal(after.filter((r) => r.replayedAt === null).length, 2);
    assert.equal((await admin.status(stream))[0]?.highWatermark, 'hwm-1');
  });

  it('a replayed row refused again is quarantined again with a new id', async () => {
    const [timeRow] = (await admin.rejected(stream)).filter((r) => r.replayedAt === null);
    assert.ok(timeRow);
    const { seq } = await admin.replay(stream, { ids: [timeRow.id] });
    await waitFor(async () => (await admin.status(stream))[0]?.committedSeq === seq, 30_000, 'the replay');
    const again = (await admin.rejected(stream)).filter((r) => r.seq === seq);
    assert.equal(again.length, 1);
    assert.notEqual(again[0]?.id, timeRow.id);
    assert.equal(again[0]?.sqlState, '22007');
  });
});
