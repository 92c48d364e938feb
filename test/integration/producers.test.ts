/**
 * The example producers in producers/, each end to end: real Redis, an in-process Worker, real
 * PostgreSQL.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { appendFileSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { produceFile } from '../../producers/file-producer.ts';
import { copyNewRows, describeTable } from '../../producers/postgres-table-producer.ts';
import { produceSynthetic, syntheticFeed } from '../../producers/synthetic-generator.ts';
import { defineTable, type IngestTable } from '../../src/index.ts';
import { connect, dropSchema, uniqueName, withClient } from '../helpers/pg.ts';
import { inProcessQueue } from '../helpers/queue.ts';
import { waitUntil } from '../helpers/wait.ts';

describe('producers/', () => {
  const schema = uniqueName('producers');
  const sourceSchema = uniqueName('producers_src');
  const queue = inProcessQueue();
  const dir = mkdtempSync(join(tmpdir(), 'pgbi-producers-'));

  after(async () => {
    await dropSchema(schema);
    await dropSchema(sourceSchema);
    rmSync(dir, { recursive: true, force: true });
  });

  const committed = (stream: string, seq: number) =>
    waitUntil(
      `${stream} committed through ${seq}`,
      async () => (await queue.producer.streamInfo(stream)).committedSeq >= seq,
      { timeoutMs: 20_000 },
    );
  const select = (sql: string) => withClient(async (c) => (await c.query(sql)).rows);

  it('file producer: enqueues a CSV file, and on a re-run only the lines appended since (test/integration/enqueue-cli.test.ts: the same as the CLI)', async () => {
    const table = defineTable({
      schema,
      name: 'file_rows',
      columns: [
        { name: 'id', type: 'bigint', primaryKey: true },
        { name: 'name', type: 'text' },
        { name: 'price', type: 'numeric(12,2)' },
      ],
    });
    const path = join(dir, 'rows.csv');
    writeFileSync(path, 'id,name,price\n1,apple,1.50\n2,"pear, green",\n3,"plum ""red""",2.25\n');
    const first = await produceFile(queue.producer, table, path, { batchRows: 2 });
    assert.deepEqual(
      first.map((r) => r.seq),
      [1, 2],
    );
    await committed(first[0]?.stream as string, 2);
    appendFileSync(path, '4,kiwi,0.99\n5,fig,3\n');
    const second = await produceFile(queue.producer, table, path, { batchRows: 100 });
    assert.deepEqual(
      second.map((r) => r.seq),
      [3],
      'one batch with only the two new lines',
    );
    await committed(first[0]?.stream as string, 3);
    const content = readFileSync(path);
    assert.deepEqual(await queue.producer.highWatermark(table), {
      file: 'rows.csv',
      line: 6,
      bytes: content.length,
      sha256: createHash('sha256').update(content).digest('hex'),
    });
    const rows = await select(`SELECT id, name, price FROM "${schema}".file_rows ORDER BY id`);
    assert.deepEqual(
      rows.map((r) => [r.id, r.name, r.price]),
      [
        ['1', 'apple', '1.50'],
        ['2', 'pear, green', null],
        ['3', 'plum "red"', '2.25'],
        ['4', 'kiwi', '0.99'],
        ['5', 'fig', '3.00'],
      ],
    );
    assert.deepEqual(await produceFile(queue.producer, table, path), [], 'nothing new: nothing enqueued');
  });

  it('postgres table producer: copies a table, then only the rows new or changed since; target = source', async () => {
    const source = await connect();
    try {
      await source.query(`CREATE SCHEMA "${sourceSchema}";
        CREATE TABLE "${sourceSchema}".accounts (id bigint PRIMARY KEY, name text NOT NULL, balance numeric(12,2),
          updated_at timestamptz NOT NULL, tags jsonb);
        INSERT INTO "${sourceSchema}".accounts
          SELECT i, 'account ' || i, i * 1.5, '2024-01-01 00:00:00.000001+00'::timestamptz + i * interval '1 microsecond',
                 jsonb_build_object('n', i)
          FROM generate_series(1, 25) AS i;`);
      const target = await describeTable(source, { schema: sourceSchema, name: 'accounts' }, schema);
      assert.deepEqual(target.primaryKey, ['id']);
      const options = {
        source,
        sourceTable: { schema: sourceSchema, name: 'accounts' },
        target,
        batchRows: 10,
      };
      const first = await copyNewRows(queue.producer, options);
      assert.equal(first.length, 3, '25 rows in batches of 10');
      await committed(first[0]?.stream as string, first.at(-1)?.seq as number);
      await assertCopied(target);

      await source.query(`INSERT INTO "${sourceSchema}".accounts VALUES (26, 'new', 1, now(), null), (27, 'newer', 2, now(), '[1]');
        UPDATE "${sourceSchema}".accounts SET name = 'changed', updated_at = now() WHERE id = 3;`);
      const second = await copyNewRows(queue.producer, { ...options, batchRows: 2 });
      const info = await queue.producer.streamInfo(second[0]?.stream as string);
      assert.equal(second.length, 2, 'only the 3 new or changed rows, in batches of 2');
      await committed(info.stream, info.enqueuedSeq);
      await assertCopied(target);
      assert.deepEqual(await copyNewRows(queue.producer, options), [], 'a third run finds nothing new');
    } finally {
      await source.end();
    }
  });

  async function assertCopied(target: IngestTable) {
    const columns = 'id, name, balance, updated_at::text AS at, tags';
    const want = await select(`SELECT ${columns} FROM "${sourceSchema}".accounts ORDER BY id`);
    const got = await select(`SELECT ${columns} FROM "${target.schema}".accounts ORDER BY id`);
    assert.deepEqual(got, want);
  }

  it('synthetic generator: deterministic and resumable batches', async () => {
    const collect = async (feed: ReturnType<typeof syntheticFeed>, hw: unknown) => {
      const out: unknown[] = [];
      for await (const batch of feed.streams[1].batches(hw as null))
        out.push(JSON.parse(JSON.stringify(batch)));
      return out;
    };
    const all = await collect(syntheticFeed({ schema, batches: 4, ordersPerBatch: 10 }), null);
    assert.equal(all.length, 4);
    assert.deepEqual(
      await collect(syntheticFeed({ schema, batches: 4, ordersPerBatch: 10 }), null),
      all,
      'same seed, same rows',
    );
    const resumed = await collect(
      syntheticFeed({ schema, batches: 4, ordersPerBatch: 10 }),
      (all[1] as unknown[])[0],
    );
    assert.deepEqual(resumed, all.slice(2), 'after the watermark of batch 2 come batches 3 and 4');
    assert.notDeepEqual(
      await collect(syntheticFeed({ schema, seed: 7, batches: 4, ordersPerBatch: 10 }), null),
      all,
    );
  });

  it('synthetic generator: streams into PostgreSQL with updates to earlier rows; a re-run sends only later batches', async () => {
    const feedSchema = `${schema}_feed`;
    try {
      const first = await produceSynthetic(queue.producer, {
        schema: feedSchema,
        batches: 6,
        ordersPerBatch: 20,
      });
      assert.deepEqual(
        first.map((s) => s.length),
        [6, 6],
      );
      const second = await produceSynthetic(queue.producer, {
        schema: feedSchema,
        batches: 8,
        ordersPerBatch: 20,
      });
      assert.deepEqual(
        second.map((s) => s.map((r) => r.seq)),
        [
          [7, 8],
          [7, 8],
        ],
        'resumes after batch 6',
      );
      for (const stream of second) await committed(stream[0]?.stream as string, 8);
      const [counts] =
        await select(`SELECT (SELECT count(*) FROM "${feedSchema}".customers)::int AS customers,
        (SELECT count(*) FROM "${feedSchema}".orders)::int AS orders,
        (SELECT count(*) FROM "${feedSchema}".orders WHERE status <> 'created')::int AS progressed,
        (SELECT count(*) FROM "${feedSchema}".order_events WHERE type <> 'created')::int AS changes`);
      assert.equal(counts.customers, 8 * 5);
      assert.equal(counts.orders, 8 * 20);
      assert.ok(counts.progressed > 0, 'earlier orders were updated');
      assert.ok(counts.changes >= counts.progressed, 'each change has its event');
    } finally {
      await dropSchema(feedSchema);
    }
  });
});
