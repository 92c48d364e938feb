import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { pino } from 'pino';
import { defineTable } from '../../src/ingest/table-definition.ts';
import { Producer } from '../../src/queue/producer.ts';
import { Worker } from '../../src/queue/worker.ts';
import { DATABASE_URL, dropSchema, uniqueName, withClient } from '../helpers/pg.ts';
import { REDIS_URL, cleanQueue, uniqueQueue, waitFor } from '../helpers/queue.ts';

describe('queue: producer to worker', () => {
  const schema = uniqueName('queue_basics');
  const names = uniqueQueue();
  const table = defineTable({
    schema,
    name: 'events',
    columns: [
      { name: 'id', type: 'bigint', primaryKey: true },
      { name: 'payload', type: 'bytea' },
      { name: 'at', type: 'timestamptz' },
    ],
  });
  let producer: Producer;
  let worker: Worker;

  before(async () => {
    producer = new Producer({ redis: REDIS_URL, ...names });
    worker = new Worker({ databaseUrl: DATABASE_URL, redis: REDIS_URL, ...names, logger: pino({ level: 'silent' }) });
    await worker.start();
  });

  after(async () => {
    await producer.close();
    await worker.close();
    await cleanQueue(names);
    await dropSchema(schema);
  });

  it('commits enqueued batches with their high watermark and values intact', async () => {
    const first = await producer.enqueue({
      tables: [table],
      highWatermark: 'hw-1',
      rows: [[table, [1n, Buffer.from([0, 255]), new Date('2020-01-01T00:00:00Z')]]],
    });
    const second = await producer.enqueue({ tables: [table], highWatermark: 'hw-2', rows: [[table, [2, null, null]]] });
    assert.deepEqual([first.seq, second.seq], [1, 2]);
    await waitFor(async () => (await producer.highWatermark(table)) === 'hw-2' && (await producer.streamInfo(first.stream)).committedSeq === 2);
    const rows = await withClient(async (c) => (await c.query(`SELECT id, payload, at FROM "${schema}".events ORDER BY id`)).rows);
    assert.deepEqual(rows.map((r) => [r.id, r.payload?.toString('hex') ?? null, r.at?.toISOString() ?? null]), [
      ['1', '00ff', '2020-01-01T00:00:00.000Z'],
      ['2', null, null],
    ]);
  });
});
