/**
 * ingest() basics against a real PostgreSQL: where tables come from, one transaction per batch,
 * onBeforeVisible, and a connection that is already inside a transaction.
 * COPY streaming and several tables per batch: ingest-streaming.test.ts.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type pg from 'pg';
import {
  defineTable,
  type IngestTable,
  ingest,
  PgBulkIngestError,
  type Row,
  Upsert,
} from '../../src/index.ts';
import {
  batchesOf,
  rejection,
  rowsOf,
  selectAll,
  tableOid,
  tableShape,
  withSchema,
} from '../helpers/ingest.ts';
import { keyedTable as keyed, plainTable as plain } from '../helpers/tables.ts';

/** Relations in the schema other than `table` and its indexes, and how many the session's temporary schema holds. */
async function relationsLeft(
  client: pg.ClientBase,
  schema: string,
  table: string,
): Promise<{ others: string[]; temp: number }> {
  const others = await client.query<{ relname: string }>(
    `SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
      WHERE n.nspname = $1 AND c.relname <> $2
        AND NOT EXISTS (SELECT FROM pg_index i JOIN pg_class t ON t.oid = i.indrelid
                         WHERE i.indexrelid = c.oid AND t.relname = $2 AND t.relnamespace = n.oid)
      ORDER BY 1`,
    [schema, table],
  );
  const temp = await client.query<{ n: number }>(
    'SELECT count(*)::int AS n FROM pg_class WHERE relnamespace = pg_my_temp_schema()',
  );
  return { others: others.rows.map((r) => r.relname), temp: temp.rows[0]?.n ?? -1 };
}

async function count(client: pg.ClientBase, table: IngestTable): Promise<number> {
  const { rows } = await client.query(`SELECT count(*)::int AS n FROM "${table.schema}"."${table.name}"`);
  return rows[0].n;
}

describe('ingest(): tables and transactions', () => {
  it('creates the schema and table inside the first batch transaction: others see them only with its rows', () =>
    withSchema('basics', async ({ schema, client, observer }) => {
      const table = keyed(schema);
      const seen: unknown[] = [];
      await ingest(client, [table], batchesOf(['hw', 'meta', rowsOf(table, [1, 'a'], [2, 'b'])]), {
        onBeforeVisible: async (c) => {
          const outside = await observer.query(
            `SELECT (SELECT count(*)::int FROM pg_namespace WHERE nspname = $1) AS schemas, to_regclass($2) AS rel`,
            [schema, `"${schema}"."keyed"`],
          );
          seen.push(outside.rows[0], await count(c, table));
        },
      });
      assert.deepEqual(
        seen,
        [{ schemas: 0, rel: null }, 2],
        'nothing visible outside the batch; its rows inside',
      );
      assert.deepEqual(await selectAll(observer, schema, 'keyed'), [
        { id: 1, value: 'a' },
        { id: 2, value: 'b' },
      ]);
      assert.deepEqual((await tableShape(observer, schema, 'keyed')).indexes, ['btree(value)']);
    }));

  it('with no batches, creates the table empty with its indexes and leaves no other relation behind', () =>
    withSchema('basics', async ({ schema, client, observer }) => {
      const table = keyed(schema);
      await ingest(client, [table], batchesOf());
      assert.deepEqual(await selectAll(observer, schema, 'keyed'), []);
      assert.deepEqual(await tableShape(observer, schema, 'keyed'), {
        columns: ['id integer NOT NULL', 'value text'],
        primaryKey: ['id'],
        indexes: ['btree(value)'],
      });
      assert.deepEqual(await relationsLeft(client, schema, 'keyed'), { others: [], temp: 0 });
    }));

  it('leaves no staging, probe or replacement relation behind after upserts and a migration', () =>
    withSchema('basics', async ({ schema, client }) => {
      await ingest(client, [keyed(schema)], batchesOf(['1', null, rowsOf(keyed(schema), [1, 'a'])]));
      const migrated = defineTable({
        schema,
        name: 'keyed',
        columns: [
          { name: 'id', type: 'integer', primaryKey: true },
          { name: 'value', type: 'text' },
          { name: 'x', type: 'int' },
        ],
        indexes: [{ columns: ['value'] }],
      });
      await ingest(
        client,
        [migrated],
        batchesOf(['2', null, rowsOf(migrated, [1, 'b', 1])], ['3', null, rowsOf(migrated, [2, 'c', 2])]),
      );
      assert.deepEqual(await relationsLeft(client, schema, 'keyed'), { others: [], temp: 0 });
    }));

  it('commits each batch on its own: a batch whose rows fail midway leaves nothing, earlier batches stay', () =>
    withSchema('basics', async ({ schema, client, observer }) => {
      const table = plain(schema);
      const failure = new Error('source went away');
      async function* failingRows(): AsyncGenerator<Row> {
        yield [table, [3, 'c']];
        yield [table, [4, 'd']];
        throw failure;
      }
      const error = await rejection(() =>
        ingest(
          client,
          [table],
          batchesOf(['1', null, rowsOf(table, [1, 'a'], [2, 'b'])], ['2', null, failingRows()]),
        ),
      );
      assert.equal(error, failure, "the caller's own error comes back as it is");
      assert.deepEqual(
        (await selectAll(observer, schema, 'plain')).map((r) => r.id),
        [1, 2],
      );
      assert.equal(client.getTransactionStatus?.(), 'I', 'rolled back, not left in a failed transaction');
      assert.deepEqual(
        (await client.query('SELECT 1 AS ok')).rows,
        [{ ok: 1 }],
        'the connection is still usable',
      );
    }));

  it('rolls back the table creation when the first batch fails', () =>
    withSchema('basics', async ({ schema, client, observer }) => {
      const table = plain(schema);
      function* failingRows(): Generator<Row> {
        yield [table, [1, 'a']];
        throw new Error('boom');
      }
      await assert.rejects(ingest(client, [table], batchesOf(['1', null, failingRows()])), /boom/);
      assert.equal(await tableOid(observer, schema, 'plain'), null);
    }));
});

describe('ingest(): onBeforeVisible', () => {
  it('runs once per table per batch, inside the transaction, with the client, table and batch metadata', () =>
    withSchema('basics', async ({ schema, client, observer }) => {
      const [a, b] = [keyed(schema, 'a'), plain(schema, 'b')];
      const calls: unknown[] = [];
      await ingest(
        client,
        [a, b],
        batchesOf(
          [
            '1',
            { n: 1 },
            [
              [a, [1, 'a']],
              [b, [1, 'b']],
            ],
          ],
          ['2', 'second', rowsOf(a, [2, 'a'])],
        ),
        {
          onBeforeVisible: async (c, table, metadata) => {
            const { rows } = await c.query('SELECT txid_current_if_assigned() IS NOT NULL AS in_tx');
            const comment = await c.query(`SELECT obj_description('"${schema}".a'::regclass) AS c`);
            calls.push({
              same: c === client,
              table: table === a ? 'a' : table === b ? 'b' : table,
              metadata,
              inTx: rows[0].in_tx,
              inside: await count(c, a),
              outside: (
                await observer
                  .query(`SELECT count(*)::int AS n FROM "${schema}".a`)
                  .catch(() => ({ rows: [{ n: 'none' }] }))
              ).rows[0].n,
              commentWritten: JSON.parse(comment.rows[0].c)['pg-bulk-ingest']['high-watermark'],
            });
          },
        },
      );
      const call = (
        table: string,
        metadata: unknown,
        inside: number,
        outside: number | string,
        hw: string,
      ) => ({
        same: true,
        table,
        metadata,
        inTx: true,
        inside,
        outside,
        commentWritten: hw,
      });
      assert.deepEqual(calls, [
        call('a', { n: 1 }, 1, 'none', '1'),
        call('b', { n: 1 }, 1, 'none', '1'),
        call('a', 'second', 2, 1, '2'),
        call('b', 'second', 2, 1, '2'),
      ]);
    }));

  it('a failure in onBeforeVisible rolls the batch back', () =>
    withSchema('basics', async ({ schema, client, observer }) => {
      const table = plain(schema);
      await ingest(client, [table], batchesOf(['1', null, rowsOf(table, [1, 'a'])]));
      const error = await rejection(() =>
        ingest(client, [table], batchesOf(['2', null, rowsOf(table, [2, 'b'])]), {
          onBeforeVisible: () => {
            throw new Error('not today');
          },
        }),
      );
      assert.match(String(error), /not today/);
      assert.deepEqual(await selectAll(observer, schema, 'plain'), [{ id: 1, value: 'a' }]);
    }));
});

describe('ingest(): a connection already inside a transaction', () => {
  /** How the caller left its transaction. Right after a failed query, pg's own status is stale (regression). */
  const setups = {
    open: async (c: pg.Client) => void (await c.query('BEGIN; CREATE TEMPORARY TABLE mine (x int)')),
    failed: async (c: pg.Client) => {
      await c.query('BEGIN; CREATE TEMPORARY TABLE mine (x int)');
      await c.query('SELECT 1/0').catch(() => undefined);
    },
    'opened and failed by one query': async (c: pg.Client) =>
      void (await c.query('BEGIN; SELECT 1/0').catch(() => undefined)),
  };
  for (const [state, setup] of Object.entries(setups)) {
    it(`refuses it (${state}) with TRANSACTION_IN_PROGRESS before anything is written`, () =>
      withSchema('basics', async ({ schema, client, observer }) => {
        const table = plain(schema);
        await setup(client);
        let called = false;
        const error = await rejection(() =>
          ingest(client, [table], () => {
            called = true;
            return [['1', null, rowsOf(table, [1, 'a'])]];
          }),
        );
        assert.ok(
          error instanceof PgBulkIngestError && error.code === 'TRANSACTION_IN_PROGRESS',
          String(error),
        );
        assert.match(
          error.message,
          state === 'open'
            ? /already inside a transaction: /
            : /already inside a transaction \(a failed one\)/,
        );
        assert.equal(called, false, 'batches() is not even called');
        assert.equal(
          client.getTransactionStatus?.(),
          state === 'open' ? 'T' : 'E',
          "the caller's transaction is left alone",
        );
        await client.query('ROLLBACK');
        assert.equal(await tableOid(observer, schema, 'plain'), null);
      }));
  }

  it('still works with plain upserts afterwards on the same connection', () =>
    withSchema('basics', async ({ schema, client, observer }) => {
      const table = keyed(schema);
      await client.query('BEGIN');
      await rejection(() => ingest(client, [table], batchesOf(['1', null, rowsOf(table, [1, 'a'])])));
      await client.query('ROLLBACK');
      await ingest(client, [table], batchesOf(['1', null, rowsOf(table, [1, 'a'])]), {
        upsert: Upsert.IF_PRIMARY_KEY,
      });
      assert.equal(await count(observer, table), 1);
    }));
});
