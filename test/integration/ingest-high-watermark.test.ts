/**
 * The high watermark in the first table's COMMENT, against a real PostgreSQL: the Python
 * library's exact format, LATEST / EARLIEST / explicit values, callables, failures, and tables
 * the Python library wrote.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  type Batch,
  defineTable,
  HighWatermark,
  ingest,
  type Json,
  PgBulkIngestError,
  type Row,
  Upsert,
} from '../../src/index.ts';
import {
  batchesOf,
  rejection,
  rowsOf,
  selectAll,
  storedHighWatermark,
  tableComment,
  tableOid,
  withSchema,
} from '../helpers/ingest.ts';

const tableIn = (schema: string, name = 'events') =>
  defineTable({
    schema,
    name,
    columns: [
      { name: 'id', type: 'integer', primaryKey: true },
      { name: 'value', type: 'varchar(16)', nullable: false },
    ],
    indexes: [{ columns: ['value'] }],
  });

/** A `batches` that records the high watermark it is called with and yields `then` (nothing by default). */
function recorder(then: Batch[] = []): { calls: (Json | null)[]; batches: (hw: Json | null) => Batch[] } {
  const calls: (Json | null)[] = [];
  const batches = (hw: Json | null) => {
    calls.push(hw);
    return then;
  };
  return { calls, batches };
}

describe('ingest(): high watermark', () => {
  it("stores it in the first table's comment in the Python library's exact format", () =>
    withSchema('hw', async ({ schema, client, observer }) => {
      const [first, second] = [tableIn(schema, 'first'), tableIn(schema, 'second')];
      await ingest(
        client,
        [first, second],
        batchesOf([
          '2015-01-01',
          null,
          [
            [first, [1, 'a']],
            [second, [1, 'b']],
          ],
        ]),
      );
      assert.equal(
        await tableComment(observer, schema, 'first'),
        '{"pg-bulk-ingest": {"high-watermark": "2015-01-01"}}',
      );
      assert.equal(await tableComment(observer, schema, 'second'), null, 'only on the first table');
    }));

  it('stores any JSON value, non-ASCII escaped as Python json.dumps does, and the last batch wins', () =>
    withSchema('hw', async ({ schema, client, observer }) => {
      const table = tableIn(schema);
      const hw = { at: '2015-01-01T00:00:00Z', ids: [1, 2.5, null, true], café: '🐘' };
      await ingest(
        client,
        [table],
        batchesOf(['first', null, rowsOf(table, [1, 'a'])], [hw, null, rowsOf(table, [2, 'b'])]),
      );
      assert.equal(
        await tableComment(observer, schema, 'events'),
        '{"pg-bulk-ingest": {"high-watermark": {"at": "2015-01-01T00:00:00Z", "ids": [1, 2.5, null, true], "caf\\u00e9": "\\ud83d\\udc18"}}}',
      );
    }));

  it('LATEST (the default) passes the stored value, or null before there is one', () =>
    withSchema('hw', async ({ schema, client }) => {
      const table = tableIn(schema);
      const before = recorder();
      await ingest(client, [table], before.batches, { highWatermark: HighWatermark.LATEST });
      await ingest(client, [table], batchesOf([{ day: '2015-01-02' }, null, rowsOf(table, [1, 'a'])]));
      const latest = recorder();
      const byDefault = recorder();
      await ingest(client, [table], latest.batches, { highWatermark: HighWatermark.LATEST });
      await ingest(client, [table], byDefault.batches);
      assert.deepEqual(before.calls, [null]);
      assert.deepEqual(latest.calls, [{ day: '2015-01-02' }]);
      assert.deepEqual(byDefault.calls, [{ day: '2015-01-02' }]);
    }));

  it('EARLIEST passes null whatever is stored', () =>
    withSchema('hw', async ({ schema, client }) => {
      const table = tableIn(schema);
      await ingest(client, [table], batchesOf(['2015-01-02', null, rowsOf(table, [1, 'a'])]));
      const earliest = recorder();
      await ingest(client, [table], earliest.batches, { highWatermark: HighWatermark.EARLIEST });
      assert.deepEqual(earliest.calls, [null]);
    }));

  it('passes any other value as it is, stored or not', () =>
    withSchema('hw', async ({ schema, client, observer }) => {
      const table = tableIn(schema);
      await ingest(client, [table], batchesOf(['2015-01-02', null, rowsOf(table, [1, 'a'])]));
      const explicit = { from: '2010-01-01', page: 3 };
      const calls: unknown[] = [];
      for (const value of [explicit, '2014-12-31', 0, false]) {
        await ingest(
          client,
          [table],
          (hw) => {
            calls.push(hw);
            return [];
          },
          { highWatermark: value },
        );
      }
      assert.equal(calls[0], explicit, 'the very same value');
      assert.deepEqual(calls.slice(1), ['2014-12-31', 0, false]);
      assert.equal(
        await storedHighWatermark(observer, schema, 'events'),
        '2015-01-02',
        'the stored one is untouched',
      );
    }));

  it('calls a callable high watermark after the rows of its batch were read, and stores what it returns', () =>
    withSchema('hw', async ({ schema, client, observer }) => {
      const table = tableIn(schema);
      const events: string[] = [];
      let lastId = 0;
      function* rows(): Generator<Row> {
        for (const id of [1, 2, 3]) {
          events.push(`row ${id}`);
          lastId = id;
          yield [table, [id, `v${id}`]];
        }
        events.push('rows done');
      }
      const highWatermark = () => {
        events.push('high watermark');
        return { lastId };
      };
      await ingest(client, [table], batchesOf([highWatermark, null, rows()]));
      assert.deepEqual(events, ['row 1', 'row 2', 'row 3', 'rows done', 'high watermark']);
      assert.deepEqual(await storedHighWatermark(observer, schema, 'events'), { lastId: 3 });
    }));

  it('keeps the last committed value when a later batch fails', () =>
    withSchema('hw', async ({ schema, client, observer }) => {
      const table = tableIn(schema);
      const error = await rejection(() =>
        ingest(
          client,
          [table],
          batchesOf(
            ['1', null, rowsOf(table, [1, 'a'])],
            ['2', null, rowsOf(table, [2, 'b'], [2, 'duplicate'])],
          ),
          { upsert: Upsert.OFF },
        ),
      );
      assert.ok(error instanceof PgBulkIngestError && error.context.sqlState === '23505', String(error));
      assert.equal(await storedHighWatermark(observer, schema, 'events'), '1');
      assert.deepEqual(await selectAll(observer, schema, 'events'), [{ id: 1, value: 'a' }]);
    }));

  it('keeps the last committed value when the batches generator fails, before or after yielding', () =>
    withSchema('hw', async ({ schema, client, observer }) => {
      const table = tableIn(schema);
      await ingest(client, [table], batchesOf(['0', null, rowsOf(table, [1, 'a'])]));
      async function* failingAfterOne(): AsyncGenerator<Batch> {
        yield ['1', null, rowsOf(table, [2, 'b'])];
        throw new Error('source down');
      }
      await assert.rejects(ingest(client, [table], failingAfterOne), /source down/);
      assert.equal(
        await storedHighWatermark(observer, schema, 'events'),
        '1',
        'batch 1 committed with its watermark',
      );
      const failingAtOnce = (): Batch[] => {
        throw new Error('source down again');
      };
      await assert.rejects(ingest(client, [table], failingAtOnce), /source down again/);
      assert.equal(await storedHighWatermark(observer, schema, 'events'), '1');
      assert.equal((await selectAll(observer, schema, 'events')).length, 2);
    }));

  it('keeps the last committed value when the callable high watermark throws or is not JSON', () =>
    withSchema('hw', async ({ schema, client, observer }) => {
      const table = tableIn(schema);
      await ingest(client, [table], batchesOf(['0', null, rowsOf(table, [1, 'a'])]));
      const throwing = () => {
        throw new Error('no watermark');
      };
      await assert.rejects(
        ingest(client, [table], batchesOf([throwing, null, rowsOf(table, [2, 'b'])])),
        /no watermark/,
      );
      await assert.rejects(
        ingest(client, [table], batchesOf([() => Number.NaN, null, rowsOf(table, [3, 'c'])])),
      );
      assert.equal(await storedHighWatermark(observer, schema, 'events'), '0');
      assert.deepEqual(await selectAll(observer, schema, 'events'), [{ id: 1, value: 'a' }]);
    }));

  it('keeps the other keys of the comment, inside and outside its own', () =>
    withSchema('hw', async ({ schema, client, observer }) => {
      const table = tableIn(schema);
      await ingest(client, [table], batchesOf());
      await observer.query(
        `COMMENT ON TABLE "${schema}".events IS '{"owner": "team-a", "pg-bulk-ingest": {"high-watermark": "0", "note": [1]}, "z": null}'`,
      );
      await ingest(client, [table], batchesOf(['1', null, rowsOf(table, [1, 'a'])]));
      assert.equal(
        await tableComment(observer, schema, 'events'),
        '{"owner": "team-a", "pg-bulk-ingest": {"high-watermark": "1", "note": [1]}, "z": null}',
      );
    }));

  it('keeps the comment, other keys included, when the first table is migrated', () =>
    withSchema('hw', async ({ schema, client, observer }) => {
      await ingest(client, [tableIn(schema)], batchesOf(['1', null, rowsOf(tableIn(schema), [1, 'a'])]));
      await observer.query(
        `COMMENT ON TABLE "${schema}".events IS '{"owner": "x", "pg-bulk-ingest": {"high-watermark": "1"}}'`,
      );
      const oid = await tableOid(observer, schema, 'events');
      const migrated = defineTable({
        schema,
        name: 'events',
        // A column before an existing one: rebuilt (not altered in place).
        columns: [
          { name: 'id', type: 'integer', primaryKey: true },
          { name: 'extra', type: 'text' },
          { name: 'value', type: 'text' },
        ],
      });
      const seen = recorder([['2', null, rowsOf(migrated, [2, null, 'b'])]]);
      await ingest(client, [migrated], seen.batches);
      assert.notEqual(await tableOid(observer, schema, 'events'), oid, 'migrated');
      assert.deepEqual(seen.calls, ['1']);
      assert.equal(
        await tableComment(observer, schema, 'events'),
        '{"owner": "x", "pg-bulk-ingest": {"high-watermark": "2"}}',
      );
    }));

  it('refuses a comment that is not a JSON object rather than overwrite it', () =>
    withSchema('hw', async ({ schema, client, observer }) => {
      const table = tableIn(schema);
      await ingest(client, [table], batchesOf());
      await observer.query(`COMMENT ON TABLE "${schema}".events IS 'Sales by day'`);
      const error = await rejection(() =>
        ingest(client, [table], batchesOf(['1', null, rowsOf(table, [1, 'a'])])),
      );
      assert.ok(error instanceof PgBulkIngestError && error.code === 'INVALID_COMMENT', String(error));
      assert.equal(await tableComment(observer, schema, 'events'), 'Sales by day');
      assert.deepEqual(await selectAll(observer, schema, 'events'), []);
    }));

  it('carries on a table the Python library wrote, and leaves it readable by it', () =>
    withSchema('hw', async ({ schema, client, observer }) => {
      // What pg-bulk-ingest (Python, SQLAlchemy) leaves: its own index name, its comment text.
      await observer.query(`
        CREATE SCHEMA "${schema}";
        CREATE TABLE "${schema}".events (id INTEGER NOT NULL, value VARCHAR(16) NOT NULL, PRIMARY KEY (id));
        CREATE INDEX ix_events_value ON "${schema}".events (value);
        INSERT INTO "${schema}".events VALUES (1, 'from python');
        COMMENT ON TABLE "${schema}".events IS '{"pg-bulk-ingest": {"high-watermark": "2015-01-01 caf\\u00e9"}}';`);
      const oid = await tableOid(observer, schema, 'events');
      const table = tableIn(schema);
      const seen = recorder([['2015-01-02 café', null, rowsOf(table, [2, 'from node'])]]);
      await ingest(client, [table], seen.batches);
      assert.deepEqual(seen.calls, ['2015-01-01 café'], 'its high watermark, decoded');
      assert.equal(await tableOid(observer, schema, 'events'), oid, 'same shape: no migration');
      assert.deepEqual(await selectAll(observer, schema, 'events'), [
        { id: 1, value: 'from python' },
        { id: 2, value: 'from node' },
      ]);
      // Python reads it back with json.loads(comment)['pg-bulk-ingest']['high-watermark'].
      assert.equal(
        await tableComment(observer, schema, 'events'),
        '{"pg-bulk-ingest": {"high-watermark": "2015-01-02 caf\\u00e9"}}',
      );
    }));
});
