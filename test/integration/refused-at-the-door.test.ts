/**
 * A value PostgreSQL would refuse is refused when the batch is enqueued, with
 * the batch, row and column named, and nothing of the batch is left in Redis, through the
 * Producer and through the gateway (real Redis). An acknowledged batch then means "will commit"
 * for everything but constraints.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { Redis } from 'ioredis';
import { defineTable, type IngestTable, Producer, type Row } from '../../src/index.ts';
import { startTestGateway, type TestGateway, GATEWAY_TOKEN as TOKEN } from '../helpers/gateway.ts';
import { dropSchema, uniqueName, withClient } from '../helpers/pg.ts';
import { cleanQueue, inProcessWorker, REDIS_URL, uniqueQueue, withWorker } from '../helpers/queue.ts';
import { waitUntil } from '../helpers/wait.ts';

const UUID = 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11';

const definition = (schema: string) => ({
  schema,
  name: 't',
  columns: [
    { name: 'id', type: 'bigint', primaryKey: true },
    { name: 'small', type: 'smallint' },
    { name: 'amount', type: 'numeric(12,2)' },
    { name: 'name', type: 'varchar(8)' },
    { name: 'code', type: 'char(2)' },
    { name: 'at', type: 'timestamptz' },
    { name: 'day', type: 'date' },
    { name: 'clock', type: 'time' },
    { name: 'ref', type: 'uuid' },
    { name: 'ratio', type: 'real' },
    { name: 'doc', type: 'jsonb' },
    { name: 'note', type: 'text' },
    { name: 'tags', type: 'text[]' },
  ],
});
type Column = ReturnType<typeof definition>['columns'][number]['name'];

const goodRow = (id: number): Record<Column, unknown> => ({
  id,
  small: 1,
  amount: '1.00',
  name: 'name',
  code: 'ab',
  at: '2024-01-01T00:00:00Z',
  day: '2024-02-29',
  clock: '12:00',
  ref: UUID,
  ratio: 1.5,
  doc: { a: 1 },
  note: 'note',
  tags: ['t'],
});

/** Edge values PostgreSQL takes: all accepted. */
const edgeRow: Partial<Record<Column, unknown>> = {
  id: '9223372036854775807',
  small: -32768,
  amount: '9999999999.994',
  name: '日本語ABCDE',
  code: 'a ',
  at: '2024-01-01 12:00:00+02',
  day: 'infinity',
  clock: '24:00:00',
  ref: `{${UUID.toUpperCase()}}`,
  ratio: '1e-40',
  doc: { emoji: '\ud83d\ude00', 'key \ud83d\ude00': [1, null] },
  note: 'a pair \ud83d\ude00',
  tags: ['x', null],
};

/** One bad value per rule, in JSON: the gateway's and the Producer's. */
const BAD_JSON: [Column, unknown, RegExp][] = [
  ['note', 'nul \u0000', /NUL character/],
  ['note', 'lone \ud800', /lone UTF-16 surrogate/],
  ['tags', ['ok', 'lone \udc00'], /lone UTF-16 surrogate/],
  ['doc', { k: 'nul \u0000' }, /NUL character.*\(at \.k\)/],
  ['doc', { 'k\u0000': 1 }, /has a key that holds a NUL character/],
  ['at', '2024-02-30T25:61:00Z', /has day 30/],
  ['at', 'yesterday-ish', /is not an ISO 8601 timestamp/],
  ['day', '2023-02-29', /has day 29, but that month has 28 days/],
  ['clock', '25:00', /time of day out of range/],
  ['small', 32768, /out of range for smallint/],
  ['id', '9223372036854775808', /out of range for bigint/],
  ['amount', '12345678901', /has 11 digits before the decimal point; numeric\(12,2\) holds at most 10/],
  ['amount', 'Infinity', /numeric\(12,2\) cannot hold Infinity/],
  ['name', 'ninechars', /longer than 8 characters/],
  ['code', 'abc', /longer than 2 characters/],
  ['ref', 'not-a-uuid', /is not a uuid/],
  ['ratio', '1e39', /out of range for real/],
];

/** Bad JavaScript values only the Producer can be given. */
const BAD_JS: [Column, unknown, RegExp][] = [
  ['doc', Number.NaN, /holds NaN, which JSON cannot hold/],
  ['doc', { a: Number.POSITIVE_INFINITY }, /holds Infinity.*\(at \.a\)/],
  ['doc', { file: Buffer.from('bytes') }, /holds a Buffer/],
  ['small', Number.NaN, /smallint cannot hold NaN or Infinity/],
  ['amount', 1e10, /has 11 digits before the decimal point/],
  ['amount', Number.POSITIVE_INFINITY, /numeric\(12,2\) cannot hold Infinity/],
  ['at', new Date(-8.6e15), /out of range for a timestamp/], // 270,000 BC
];

function values(table: IngestTable, row: Partial<Record<Column, unknown>>, id: number): unknown[] {
  const full = { ...goodRow(id), ...row };
  return table.columns.map((c) => full[c.name as Column]);
}

/** Every key of this test's queue and prefix, with its content: what "nothing changed" means. */
async function redisState(redis: Redis, names: { queueName: string; prefix: string }) {
  const state: Record<string, string> = {};
  for (const pattern of [`*${names.queueName}*`]) {
    let cursor = '0';
    do {
      const [next, keys] = await redis.scan(cursor, 'MATCH', pattern, 'COUNT', 1000);
      cursor = next;
      for (const key of keys) state[key] = ((await redis.dumpBuffer(key)) as Buffer).toString('hex');
    } while (cursor !== '0');
  }
  return state;
}

describe('refused at the door: the Producer', () => {
  const schema = uniqueName('door');
  const names = uniqueQueue();
  const table = defineTable(definition(schema));
  let producer: Producer;
  let redis: Redis;

  before(async () => {
    // Small parts: a bad row far into a batch comes after parts were already uploaded.
    producer = new Producer({ redis: REDIS_URL, ...names, partBytes: 4096 });
    redis = new Redis(REDIS_URL);
  });
  after(async () => {
    await producer.close();
    redis.disconnect();
    await cleanQueue(names);
  });

  const batch = (rows: Row[]) => ({ tables: [table], highWatermark: 'hw', rows });
  const manyRows = (last: Partial<Record<Column, unknown>>): Row[] => [
    ...Array.from({ length: 2000 }, (_, i): Row => [table, values(table, {}, i + 1)]),
    [table, values(table, last, 2001)],
  ];

  it('takes edge values that PostgreSQL takes', async () => {
    const result = await producer.enqueue(batch([[table, values(table, edgeRow, 1)]]), 'Batch 1');
    assert.deepEqual(result, { stream: `${schema}.t`, seq: 1, duplicate: false });
  });

  it('refuses each value PostgreSQL would refuse, naming batch, row and column, and enqueues nothing', async () => {
    const before = await redisState(redis, names);
    assert.ok(Object.keys(before).length > 0, 'the first batch is in Redis');
    for (const [column, value, message] of [...BAD_JSON, ...BAD_JS]) {
      await assert.rejects(
        producer.enqueue(batch(manyRows({ [column]: value })), 'Batch 7'),
        (error: Error & { code?: string; context?: object }) => {
          assert.equal(error.code, 'INVALID_BATCH_JOB');
          assert.deepEqual(error.context, { row: 2001, table: `${schema}.t`, column });
          assert.match(
            error.message,
            new RegExp(`^Batch 7, row 2001 \\(${schema}\\.t\\), column "${column}" \\(`),
          );
          assert.match(error.message, message);
          return true;
        },
        `${column} ${String(value)}`,
      );
      assert.deepEqual(
        await redisState(redis, names),
        before,
        `${column} ${String(value)} left something in Redis`,
      );
    }
    assert.equal((await producer.streamInfo(`${schema}.t`)).enqueuedSeq, 1);
  });

  it('closes a rows generator, sync or async, that a refused row or its own error stopped; enqueues nothing', async () => {
    const before = await redisState(redis, names);
    const rows = manyRows({ small: 40_000 });
    for (const kind of ['sync', 'async'] as const) {
      for (const stop of ['a refused row', 'the source throws'] as const) {
        let closed = false;
        let yielded = 0;
        const source = (function* () {
          try {
            for (const row of rows) {
              if (stop === 'the source throws' && yielded === 1500) throw new Error('source broke');
              yielded += 1;
              yield row;
            }
            yield* rows; // never reached: row 2001 is refused
          } finally {
            closed = true;
          }
        })();
        const given =
          kind === 'sync'
            ? source
            : (async function* () {
                try {
                  yield* source;
                } finally {
                  source.return(undefined);
                }
              })();
        await assert.rejects(
          producer.enqueue(batch(given as unknown as Row[]), 'Batch 8'),
          // a RegExp is matched against `${error}`: the error's name first
          stop === 'a refused row'
            ? /^InvalidBatchError: Batch 8, row 2001 .*column "small"/
            : /^Error: source broke$/,
          `${kind}, ${stop}`,
        );
        assert.equal(closed, true, `${kind}, ${stop}: the generator was closed`);
        assert.equal(yielded, stop === 'a refused row' ? 2001 : 1500, `${kind}, ${stop}: rows read`);
        assert.deepEqual(await redisState(redis, names), before, `${kind}, ${stop} left something in Redis`);
      }
    }
  });

  it('commits the accepted batch of edge values: acknowledged means it will commit', {
    timeout: 60_000,
  }, async () => {
    try {
      await withWorker(inProcessWorker(names), async () => {
        await waitUntil(
          'the commit',
          async () => (await producer.streamInfo(`${schema}.t`)).committedSeq === 1,
          { timeoutMs: 30_000 },
        );
        assert.equal((await producer.streamInfo(`${schema}.t`)).blocked, null);
        const rows = await withClient((c) =>
          c.query(`SELECT name, code, clock::text, day::text FROM "${schema}".t`),
        );
        assert.deepEqual(rows.rows, [
          { name: '日本語ABCDE', code: 'a ', clock: '24:00:00', day: 'infinity' },
        ]);
      });
    } finally {
      await dropSchema(schema);
    }
  });
});

describe('refused at the door: the gateway', () => {
  const schema = uniqueName('door_gw');
  const names = uniqueQueue();
  const table = defineTable(definition(schema));
  let gateway: TestGateway;
  let redis: Redis;
  let base: string;

  before(async () => {
    gateway = await startTestGateway(names);
    base = gateway.base;
    redis = new Redis(REDIS_URL);
  });
  after(async () => {
    await gateway.close();
    redis.disconnect();
    await cleanQueue(names);
  });

  const post = (rows: Partial<Record<Column, unknown>>[]) =>
    fetch(`${base}/v1/batches`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${TOKEN}` },
      body: JSON.stringify({
        version: 1,
        tables: [definition(schema)],
        highWatermark: 'hw',
        rows: rows.map((row, i) => [`${schema}.t`, values(table, row, i + 1)]),
      }),
    });

  it('answers 202 for edge values PostgreSQL takes, 400 naming row and column for each it would refuse, and enqueues nothing', async () => {
    const accepted = await post([edgeRow]);
    assert.equal(accepted.status, 202, await accepted.clone().text());
    const before = await redisState(redis, names);
    for (const [column, value, message] of BAD_JSON) {
      const response = await post([{}, {}, { [column]: value }]);
      assert.equal(response.status, 400, `${column} ${JSON.stringify(value)}`);
      const body = (await response.json()) as { error: string; code: string; context: object };
      assert.equal(body.code, 'INVALID_BATCH_JOB');
      assert.deepEqual(body.context, { row: 3, table: `${schema}.t`, column });
      assert.match(body.error, new RegExp(`^Batch, row 3 \\(${schema}\\.t\\), column "${column}" \\(`));
      assert.match(body.error, message);
      assert.deepEqual(
        await redisState(redis, names),
        before,
        `${column} ${JSON.stringify(value)} left something in Redis`,
      );
    }
  });
});
