import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { Delete, defineTable, HighWatermark } from '../../src/index.ts';
import { dropSchema, uniqueName, withClient } from '../helpers/pg.ts';
import { inProcessQueue } from '../helpers/queue.ts';
import { waitUntil } from '../helpers/wait.ts';

describe('queue: producer to worker', () => {
  const schema = uniqueName('queue_basics');
  const queue = inProcessQueue();
  const table = defineTable({
    schema,
    name: 'events',
    columns: [
      { name: 'id', type: 'bigint', primaryKey: true },
      { name: 'payload', type: 'bytea' },
      { name: 'at', type: 'timestamptz' },
    ],
  });

  after(async () => {
    await dropSchema(schema);
  });

  it('commits enqueued batches with their high watermark and values intact', async () => {
    const first = await queue.producer.enqueue({
      tables: [table],
      highWatermark: 'hw-1',
      rows: [[table, [1n, Buffer.from([0, 255]), new Date('2020-01-01T00:00:00Z')]]],
    });
    const second = await queue.producer.enqueue({
      tables: [table],
      highWatermark: 'hw-2',
      rows: [[table, [2, null, null]]],
    });
    assert.deepEqual([first.seq, second.seq], [1, 2]);
    await waitUntil(
      'both batches to commit, high watermark hw-2',
      async () =>
        (await queue.producer.highWatermark(table)) === 'hw-2' &&
        (await queue.producer.streamInfo(first.stream)).committedSeq === 2,
    );
    const rows = await withClient(
      async (c) => (await c.query(`SELECT id, payload, at FROM "${schema}".events ORDER BY id`)).rows,
    );
    assert.deepEqual(
      rows.map((r) => [r.id, r.payload?.toString('hex') ?? null, r.at?.toISOString() ?? null]),
      [
        ['1', '00ff', '2020-01-01T00:00:00.000Z'],
        ['2', null, null],
      ],
    );
  });

  it('producer.ingest with Delete.BEFORE_FIRST_BATCH empties the table before the first batch only, as ingest() does', async () => {
    const other = defineTable({
      schema,
      name: 'replaced',
      columns: [{ name: 'id', type: 'integer', primaryKey: true }],
    });
    const pre = await queue.producer.enqueue({ tables: [other], highWatermark: 0, rows: [[other, [100]]] });
    const results = await queue.producer.ingest(
      [other],
      function* () {
        yield [
          1,
          null,
          [
            [other, [1]],
            [other, [2]],
          ],
        ] as const;
        yield [2, null, [[other, [3]]]] as const;
        yield [3, null, [[other, [4]]]] as const;
      },
      { delete: Delete.BEFORE_FIRST_BATCH, highWatermark: HighWatermark.EARLIEST },
    );
    assert.deepEqual(
      results.map((r) => r.seq),
      [pre.seq + 1, pre.seq + 2, pre.seq + 3],
    );
    await waitUntil(
      'the three batches to commit',
      async () => (await queue.producer.streamInfo(pre.stream)).committedSeq === pre.seq + 3,
    );
    const rows = await withClient(
      async (c) => (await c.query(`SELECT id FROM "${schema}".replaced ORDER BY id`)).rows,
    );
    assert.deepEqual(
      rows.map((r) => r.id),
      [1, 2, 3, 4],
    );
  });
});
