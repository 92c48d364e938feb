/**
 * `schemaChanges` through the queue, as a rolling deploy sends it: two producer versions
 * enqueue batches of one stream with two definitions of its table, alternating. The option
 * travels in the wire format's `options`. ADDITIVE commits all 20 batches and loses no value;
 * FREEZE parks the stream at the first batch whose definition differs, saying how.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { defineTable, type IngestTable, SchemaChanges } from '../../src/index.ts';
import { StreamAdmin } from '../../src/queue/admin.ts';
import { Producer } from '../../src/queue/producer.ts';
import { selectAll } from '../helpers/ingest.ts';
import { DATABASE_URL, dropSchema, uniqueName, withClient } from '../helpers/pg.ts';
import { cleanQueue, inProcessWorker, REDIS_URL, uniqueQueue } from '../helpers/queue.ts';
import { forgetStreams } from '../helpers/stream-state.ts';
import { waitUntil } from '../helpers/wait.ts';

const versions = (schema: string) => {
  const id = { name: 'id', type: 'integer', primaryKey: true } as const;
  const v1 = defineTable({ schema, name: 't', columns: [id, { name: 'a', type: 'varchar(8)' }] });
  const v2 = defineTable({
    schema,
    name: 't',
    columns: [id, { name: 'a', type: 'varchar(32)' }, { name: 'b', type: 'text', index: true }],
  });
  return { v1, v2 };
};

/** Batch i: odd from v2 (a new row with `b`), even from v1 (a new row, and an update of row i-1). */
function rows(
  v: { v1: IngestTable; v2: IngestTable },
  i: number,
): { table: IngestTable; values: unknown[][] } {
  if (i % 2 === 1) return { table: v.v2, values: [[i, `new ${i} longer than 8`, `b ${i}`]] };
  return {
    table: v.v1,
    values: [
      [i, `old ${i}`],
      [i - 1, `upd ${i - 1}`],
    ],
  };
}

async function withQueue(
  fn: (q: { schema: string; producer: Producer; admin: StreamAdmin }) => Promise<void>,
): Promise<void> {
  const schema = uniqueName('queue_schema_changes');
  const names = uniqueQueue();
  const producer = new Producer({ redis: REDIS_URL, ...names });
  const admin = new StreamAdmin({ databaseUrl: DATABASE_URL, redis: REDIS_URL, ...names });
  const worker = inProcessWorker(names, { poisonRetries: 0, poisonBackoffMs: 10 });
  await worker.start();
  try {
    await fn({ schema, producer, admin });
  } finally {
    await producer.close();
    await worker.close();
    await admin.close();
    await cleanQueue(names);
    await dropSchema(schema);
    await forgetStreams(schema);
  }
}

async function enqueueRolling(producer: Producer, schema: string, schemaChanges: SchemaChanges) {
  const v = versions(schema);
  for (let i = 1; i <= 20; i++) {
    const { table, values } = rows(v, i);
    await producer.enqueue({
      tables: [table],
      highWatermark: i,
      rows: values.map((r) => [table, r] as const),
      options: { schemaChanges },
    });
  }
}

describe('queue: schemaChanges in a rolling deploy', () => {
  it('ADDITIVE: 20 batches from two definitions all commit, and no value is lost', { timeout: 90_000 }, () =>
    withQueue(async ({ schema, producer, admin }) => {
      await enqueueRolling(producer, schema, SchemaChanges.ADDITIVE);
      const stream = `${schema}.t`;
      await waitUntil('all 20 batches', async () => (await admin.status(stream))[0]?.committedSeq === 20, {
        timeoutMs: 60_000,
      });
      const table = await withClient((c) => selectAll(c, schema, 't'));
      assert.equal(table.length, 20);
      for (let i = 1; i <= 20; i += 2) {
        assert.deepEqual(table[i - 1], { id: i, a: `upd ${i}`, b: `b ${i}` });
        assert.deepEqual(table[i], { id: i + 1, a: `old ${i + 1}`, b: null });
      }
    }),
  );

  it(
    'FREEZE: the stream is parked at the first batch whose definition differs, with the diff',
    { timeout: 90_000 },
    () =>
      withQueue(async ({ schema, producer, admin }) => {
        await enqueueRolling(producer, schema, SchemaChanges.FREEZE);
        const stream = `${schema}.t`;
        await waitUntil(
          'the stream to be parked',
          async () => (await admin.status(stream))[0]?.blocked != null,
          { timeoutMs: 60_000 },
        );
        const status = (await admin.status(stream))[0];
        assert.equal(status?.committedSeq, 1);
        assert.equal(status?.blocked?.seq, 2);
        assert.match(status?.blocked?.reason ?? '', /SchemaChanges\.FREEZE/);
        assert.match(
          status?.blocked?.reason ?? '',
          /column "a": character varying\(32\) in the table, character varying\(8\) in the definition/,
        );
        assert.deepEqual(
          (await withClient((c) => selectAll(c, schema, 't'))).map((r) => r.id),
          [1],
        );
      }),
  );
});
