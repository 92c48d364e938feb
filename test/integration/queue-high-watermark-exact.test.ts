/**
 * High watermarks and metadata through the queue: exact values end to end (Producer -> Redis ->
 * worker -> comment and stream_state -> status), and values JSON cannot hold refused at enqueue,
 * before anything is written.
 */

import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { Redis } from 'ioredis';
import { defineTable, type Json, PgBulkIngestError } from '../../src/index.ts';
import { StreamAdmin } from '../../src/queue/admin.ts';
import { QueueKeys } from '../../src/queue/queue-keys.ts';
import { tableComment } from '../helpers/ingest.ts';
import { DATABASE_URL, dropSchema, uniqueName, withClient } from '../helpers/pg.ts';
import { inProcessQueue, REDIS_URL } from '../helpers/queue.ts';
import { waitUntil } from '../helpers/wait.ts';

describe('queue: exact high watermarks', () => {
  const schema = uniqueName('queue_hw');
  const queue = inProcessQueue();
  const tableNamed = (name: string) =>
    defineTable({ schema, name, columns: [{ name: 'id', type: 'integer', primaryKey: true }] });

  after(async () => {
    await dropSchema(schema);
  });

  it('keeps a bigint watermark exact in Redis, the comment, stream_state, highWatermark() and status', async () => {
    const table = tableNamed('big');
    const hw = { id: 1234567890123456789n, at: new Date('2024-05-06T07:08:09.123Z'), n: 42 };
    const { stream } = await queue.producer.enqueue({
      tables: [table],
      highWatermark: hw,
      rows: [[table, [1]]],
    });
    const expected = { id: 1234567890123456789n, at: '2024-05-06T07:08:09.123Z', n: 42 };
    await waitUntil(
      'the batch to commit',
      async () => (await queue.producer.streamInfo(stream)).committedSeq === 1,
    );
    assert.deepEqual(await queue.producer.highWatermark(table), expected);
    const info = await queue.producer.streamInfo(stream);
    assert.deepEqual([info.lastHighWatermark, info.committedHighWatermark], [expected, expected]);
    const comment = await withClient((c) => tableComment(c, schema, 'big'));
    assert.equal(
      comment,
      '{"pg-bulk-ingest": {"high-watermark": {"id": 1234567890123456789, "at": "2024-05-06T07:08:09.123Z", "n": 42}}}',
    );
    const stored = await withClient(
      async (c) =>
        (
          await c.query('SELECT high_watermark::text AS hw FROM bulk_ingest.stream_state WHERE stream = $1', [
            stream,
          ])
        ).rows[0]?.hw,
    );
    assert.equal(stored, '{"n": 42, "at": "2024-05-06T07:08:09.123Z", "id": 1234567890123456789}');
    const admin = new StreamAdmin({ databaseUrl: DATABASE_URL, redis: REDIS_URL, ...queue.names });
    try {
      const [status] = await admin.status(stream);
      assert.deepEqual(status?.highWatermark, expected);
    } finally {
      await admin.close();
    }
  });

  it('keeps a pending bigint watermark exact in Redis before it commits', async () => {
    const table = tableNamed('pending');
    const redis = new Redis(REDIS_URL);
    try {
      const { stream } = await queue.producer.enqueue({
        tables: [table],
        highWatermark: 9007199254740993n,
        rows: [[table, [1]]],
      });
      const raw = await redis.hget(
        new QueueKeys(queue.names.prefix).stream(stream).state,
        'lastHighWatermark',
      );
      assert.equal(raw, '9007199254740993');
    } finally {
      redis.disconnect();
    }
  });

  const deep = (depth: number) => {
    let value: unknown = 0;
    for (let i = 0; i < depth; i++) value = { a: value };
    return value;
  };
  const refused: [string, { highWatermark?: unknown; metadata?: unknown }, RegExp][] = [
    [
      'a high watermark function returning undefined',
      { highWatermark: () => undefined },
      /the high watermark .*undefined/,
    ],
    ['an undefined high watermark', { highWatermark: undefined }, /the high watermark .*undefined/],
    [
      'a high watermark nested 2,500 deep',
      { highWatermark: deep(2_500) },
      /the high watermark .*more than 100 levels/,
    ],
    ['metadata nested 5,000 deep', { metadata: deep(5_000) }, /the metadata .*more than 100 levels/],
    ['NaN in metadata', { metadata: { n: Number.NaN } }, /the metadata .* at \$\.n.*NaN/],
    ['Infinity as a high watermark', { highWatermark: Number.POSITIVE_INFINITY }, /Infinity/],
    ['a Map as metadata', { metadata: new Map() }, /the metadata .*Map/],
    ['a function in metadata', { metadata: { f: () => 1 } }, /function/],
    ['\\u0000 in a high watermark string', { highWatermark: ['a\u0000'] }, /at \$\[0\].*\\u0000/],
    ['a lone surrogate in metadata', { metadata: '\udc00' }, /lone surrogate/],
  ];
  for (const [what, input, message] of refused) {
    it(`refuses ${what} at enqueue, naming it, with nothing enqueued`, async () => {
      const table = tableNamed(`r${refused.findIndex(([w]) => w === what)}`);
      const redis = new Redis(REDIS_URL);
      const parts = () => redis.keys(`${queue.names.prefix}:part:*`);
      const partsBefore = (await parts()).sort();
      const error = await queue.producer
        .enqueue({
          tables: [table],
          highWatermark: ('highWatermark' in input ? input.highWatermark : 'ok') as Json,
          metadata: (input.metadata ?? null) as Json,
          rows: [[table, [1]]],
        })
        .then(
          () => undefined,
          (e: unknown) => e,
        );
      assert.ok(error instanceof PgBulkIngestError && error.code === 'INVALID_JSON_VALUE', String(error));
      assert.match(error.message, /^Batch: /);
      assert.match(error.message, message);
      const info = await queue.producer.streamInfo(`${schema}.${table.name}`);
      assert.equal(info.enqueuedSeq, 0, 'nothing enqueued');
      assert.deepEqual((await parts()).sort(), partsBefore, 'no part left behind');
      redis.disconnect();
    });
  }
});
