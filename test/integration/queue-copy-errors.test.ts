/**
 * A batch's rows reach COPY as bytes, a part at a time (wire-part-bytes.ts), when the batch has
 * one table. What PostgreSQL says about a row must still name that row by its place in the
 * batch, across parts; and an upsert's last row for a key must still win, across parts (the
 * ordinals the staging table is sorted by).
 */
import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { Redis } from 'ioredis';
import { defineTable, Producer, StreamAdmin, Upsert } from '../../src/index.ts';
import { QueueKeys } from '../../src/queue/queue-keys.ts';
import { tableOid } from '../helpers/ingest.ts';
import { DATABASE_URL, dropSchema, uniqueName, withClient } from '../helpers/pg.ts';
import { cleanQueue, inProcessWorker, REDIS_URL, uniqueQueue, withWorker } from '../helpers/queue.ts';
import { forgetStreams } from '../helpers/stream-state.ts';
import { waitUntil } from '../helpers/wait.ts';

const ROWS = 600; // over several parts of 4 KiB
const table = (schema: string, name: string) =>
  defineTable({
    schema,
    name,
    columns: [
      { name: 'id', type: 'integer', primaryKey: true },
      { name: 'label', type: 'text' },
      { name: 'doc', type: 'jsonb' },
    ],
  });
const values = (id: number, label: string) => [
  id,
  label,
  { label, quote: 'a "b" \\ c/d', list: [id, null, true] },
];

describe('queue: rows sent to COPY as bytes, part by part', () => {
  const schema = uniqueName('copy_bytes');
  const names = uniqueQueue();
  const producer = new Producer({ redis: REDIS_URL, ...names, partBytes: 4096 });
  after(async () => {
    await producer.close();
    await cleanQueue(names);
    await forgetStreams(schema);
    await dropSchema(schema);
  });

  /** Runs a worker (no retries) until the stream's first batch is parked; returns why. */
  async function parkedReason(stream: string): Promise<string> {
    const admin = new StreamAdmin({ redis: REDIS_URL, ...names, databaseUrl: DATABASE_URL });
    try {
      await withWorker(inProcessWorker(names, { poisonRetries: 0, poisonBackoffMs: 10 }), async () => {
        await waitUntil(
          'the batch to be parked',
          async () => (await admin.status(stream))[0]?.blocked != null,
          {
            timeoutMs: 30_000,
          },
        );
      });
      return (await admin.status(stream))[0]?.blocked?.reason ?? '';
    } finally {
      await admin.close();
    }
  }

  it('names the row of the batch PostgreSQL refuses, in a later part; the batch is parked whole', {
    timeout: 60_000,
  }, async () => {
    const t = table(schema, 'plain');
    const rows = Array.from({ length: ROWS }, (_, i) => [t, values(i + 1, `row ${i + 1}`)] as const);
    rows[449] = [t, values(7, 'again')]; // row 450 repeats the key of row 7: a plain insert fails there
    await producer.enqueue({ tables: [t], highWatermark: 1, rows, options: { upsert: Upsert.OFF } });
    const reason = await parkedReason(`${schema}.plain`);
    assert.match(reason, /row 450 of the batch \(row 450 of "[^"]+"\."plain"\)/);
    assert.match(reason, /duplicate key value violates unique constraint/);
    // The table was to be created by the batch's transaction: rolled back with it.
    assert.equal(
      await withClient((c) => tableOid(c, schema, 'plain')),
      null,
      'nothing of the batch is applied',
    );
  });

  it('refuses a part changed in Redis into what JSON.stringify never writes (\\. would end the COPY data): nothing committed', {
    timeout: 60_000,
  }, async () => {
    // The text column last: a line ending in `\.` is COPY's end of data, the rest dropped silently.
    const t = defineTable({
      schema,
      name: 'tampered',
      columns: [
        { name: 'id', type: 'integer', primaryKey: true },
        { name: 'doc', type: 'jsonb' },
        { name: 'label', type: 'text' },
      ],
    });
    const rows = Array.from({ length: ROWS }, (_, i) => [t, [i + 1, { i }, `v${i + 1}`]] as const);
    await producer.enqueue({ tables: [t], highWatermark: 1, rows, options: { upsert: Upsert.OFF } });
    // Row 5's label becomes `v5\.`: in COPY text, `\.` at the end of a line ends the data.
    const redis = new Redis(REDIS_URL);
    try {
      let changed = 0;
      const keys = await redis.keys(new QueueKeys(names.prefix).streamPattern(`${schema}.tampered`));
      for (const key of keys.filter((k) => k.includes(':part:'))) {
        const part = (await redis.getBuffer(key)) as Buffer;
        const text = part.toString().replace('"v5"]', String.raw`"v5\."]`);
        if (text !== part.toString()) {
          await redis.set(key, text, 'KEEPTTL');
          changed += 1;
        }
      }
      assert.equal(changed, 1);
    } finally {
      redis.disconnect();
    }
    assert.match(await parkedReason(`${schema}.tampered`), /batch 1: a part of its rows is not valid JSON/);
    assert.equal(
      await withClient((c) => tableOid(c, schema, 'tampered')),
      null,
      'no row of the batch is committed',
    );
  });

  it('upserts: the last row of a key wins, across parts and across the batches of a transaction', {
    timeout: 60_000,
  }, async () => {
    const t = table(schema, 't');
    const batch = (b: number) =>
      Array.from({ length: ROWS }, (_, i) => [t, values((i % 250) + 1, `batch ${b} row ${i + 1}`)] as const);
    // Enqueued before the worker starts: the three batches are applied in one transaction.
    for (const b of [1, 2, 3]) await producer.enqueue({ tables: [t], highWatermark: b, rows: batch(b) });
    await withWorker(inProcessWorker(names), async () => {
      await waitUntil(
        'the commits',
        async () => (await producer.streamInfo(`${schema}.t`)).committedSeq === 3,
        {
          timeoutMs: 30_000,
        },
      );
    });
    const got = await withClient((c) => c.query(`SELECT id, label, doc FROM "${schema}".t ORDER BY id`));
    // Key k is written by rows k, k + 250 and (k ≤ 100) k + 500 of each batch: batch 3's last one wins.
    const want = Array.from({ length: 250 }, (_, k) => {
      const last = k + 1 <= 100 ? k + 501 : k + 251;
      const [id, label, doc] = values(k + 1, `batch 3 row ${last}`);
      return { id, label, doc };
    });
    assert.deepEqual(got.rows, want);
  });
});
