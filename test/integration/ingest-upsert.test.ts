/**
 * Upsert and delete modes against a real PostgreSQL: IF_PRIMARY_KEY through a staging table
 * (last row wins, readers not blocked), OFF and tables without a primary key (plain insert),
 * and Delete.BEFORE_FIRST_BATCH.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type pg from 'pg';
import {
  Delete,
  defineTable,
  type IngestTable,
  ingest,
  PgBulkIngestError,
  type Row,
  Upsert,
} from '../../src/index.ts';
import {
  backendPid,
  batchesOf,
  rejection,
  rowsOf,
  selectAll,
  storedHighWatermark,
  tableOid,
  withSchema,
} from '../helpers/ingest.ts';
import { keyedTable, plainTable } from '../helpers/tables.ts';

/** No index: the upserts below need none. */
const keyed = (schema: string, name = 'keyed') => keyedTable(schema, name, []);
const unkeyed = (schema: string) => plainTable(schema, 'unkeyed');

/** Seeds `table` with `values` in one committed batch. */
async function seed(client: pg.Client, table: IngestTable, ...values: unknown[][]): Promise<void> {
  await ingest(client, [table], batchesOf(['seed', null, rowsOf(table, ...values)]));
}

/** The locks `pid` holds on `oid`. */
async function locksHeld(observer: pg.ClientBase, pid: number, oid: number | null): Promise<string[]> {
  const { rows } = await observer.query(
    'SELECT mode FROM pg_locks WHERE pid = $1 AND relation = $2 AND granted ORDER BY 1',
    [pid, oid],
  );
  return rows.map((r) => r.mode);
}

describe('ingest(): Upsert.IF_PRIMARY_KEY', () => {
  it('updates the rows whose key exists and inserts the others', () =>
    withSchema('upsert', async ({ schema, client, observer }) => {
      const table = keyed(schema);
      await seed(client, table, [1, 'a'], [2, 'b']);
      await ingest(client, [table], batchesOf(['2', null, rowsOf(table, [2, 'B'], [3, 'c'])]), {
        upsert: Upsert.IF_PRIMARY_KEY,
      });
      assert.deepEqual(await selectAll(observer, schema, 'keyed'), [
        { id: 1, value: 'a' },
        { id: 2, value: 'B' },
        { id: 3, value: 'c' },
      ]);
    }));

  it('keeps the last of the rows duplicated within a batch, NULLs included, with a composite key', () =>
    withSchema('upsert', async ({ schema, client, observer }) => {
      const table = defineTable({
        schema,
        name: 'pairs',
        columns: [
          { name: 'a', type: 'integer', primaryKey: true },
          { name: 'value', type: 'text' },
          { name: 'b', type: 'text', primaryKey: true },
        ],
      });
      await seed(client, table, [1, 'seeded', 'x']);
      const rows = rowsOf(
        table,
        [1, 'first', 'x'],
        [2, 'p', 'x'],
        [1, 'other key', 'y'],
        [1, null, 'x'],
        [1, 'last', 'x'],
        [2, null, 'x'],
      );
      await ingest(client, [table], batchesOf(['2', null, rows]));
      const { rows: actual } = await observer.query(`SELECT * FROM "${schema}".pairs ORDER BY a, b`);
      assert.deepEqual(actual, [
        { a: 1, value: 'last', b: 'x' },
        { a: 1, value: 'other key', b: 'y' },
        { a: 2, value: null, b: 'x' },
      ]);
    }));

  it('keeps the last duplicate even when the rows of the table went through several COPYs', () =>
    withSchema('upsert', async ({ schema, client, observer }) => {
      const [table, other] = [keyed(schema), keyed(schema, 'other')];
      // With a buffer of 2, every two rows of `other` interrupt the COPY of `table`, and back.
      const rows: Row[] = [];
      for (let i = 0; i < 30; i++)
        rows.push([table, [i % 4, `v${i}`]], [other, [i, 'o']], [other, [i + 100, 'o']]);
      await ingest(client, [table, other], batchesOf(['1', null, rows]), { maxRowsPerTableBuffer: 2 });
      assert.deepEqual(await selectAll(observer, schema, 'keyed'), [
        { id: 0, value: 'v28' },
        { id: 1, value: 'v29' },
        { id: 2, value: 'v26' },
        { id: 3, value: 'v27' },
      ]);
      assert.equal((await selectAll(observer, schema, 'other')).length, 60);
    }));

  it('does not block readers: no ACCESS EXCLUSIVE lock, another session reads the old rows meanwhile', () =>
    withSchema('upsert', async ({ schema, client, observer }) => {
      const table = keyed(schema);
      await seed(client, table, [1, 'old']);
      const pid = await backendPid(client);
      const oid = await tableOid(observer, schema, 'keyed');
      const seen: unknown[] = [];
      await ingest(client, [table], batchesOf(['2', null, rowsOf(table, [1, 'new'], [2, 'new'])]), {
        onBeforeVisible: async () => {
          // The merge has run; the batch is not committed yet.
          await observer.query("SET lock_timeout = '1s'");
          seen.push((await selectAll(observer, schema, 'keyed')).map((r) => r.value));
          seen.push(await locksHeld(observer, pid, oid));
        },
      });
      assert.deepEqual(seen[0], ['old']);
      assert.ok(!(seen[1] as string[]).includes('AccessExclusiveLock'), `locks held: ${seen[1]}`);
      assert.ok((seen[1] as string[]).includes('RowExclusiveLock'), 'it did write to the table');
      assert.deepEqual(await selectAll(observer, schema, 'keyed'), [
        { id: 1, value: 'new' },
        { id: 2, value: 'new' },
      ]);
    }));

  it('does nothing more than insert on a table whose every column is in the key', () =>
    withSchema('upsert', async ({ schema, client, observer }) => {
      const table = defineTable({
        schema,
        name: 'keys',
        columns: [{ name: 'id', type: 'integer', primaryKey: true }],
      });
      await seed(client, table, [1], [2]);
      await ingest(client, [table], batchesOf(['2', null, rowsOf(table, [2], [3], [3])]));
      assert.deepEqual(await selectAll(observer, schema, 'keys'), [{ id: 1 }, { id: 2 }, { id: 3 }]);
    }));
});

describe('ingest(): plain insert', () => {
  it('with Upsert.OFF, a key already in the table fails the batch, which rolls back whole', () =>
    withSchema('upsert', async ({ schema, client, observer }) => {
      const table = keyed(schema);
      await seed(client, table, [1, 'a']);
      const error = await rejection(() =>
        ingest(client, [table], batchesOf(['2', null, rowsOf(table, [2, 'b'], [1, 'dup'], [3, 'c'])]), {
          upsert: Upsert.OFF,
        }),
      );
      assert.ok(error instanceof PgBulkIngestError, String(error));
      assert.equal(error.context.sqlState, '23505');
      assert.equal(error.context.table, `"${schema}"."keyed"`);
      assert.deepEqual(await selectAll(observer, schema, 'keyed'), [{ id: 1, value: 'a' }]);
      assert.equal(await storedHighWatermark(observer, schema, 'keyed'), 'seed');
    }));

  it('with Upsert.OFF, a key repeated within the batch fails it too', () =>
    withSchema('upsert', async ({ schema, client, observer }) => {
      const table = keyed(schema);
      const error = await rejection(() =>
        ingest(client, [table], batchesOf(['1', null, rowsOf(table, [1, 'a'], [1, 'b'])]), {
          upsert: Upsert.OFF,
        }),
      );
      assert.ok(error instanceof PgBulkIngestError && error.context.sqlState === '23505', String(error));
      assert.equal(
        await tableOid(observer, schema, 'keyed'),
        null,
        'the first batch created it: rolled back too',
      );
    }));

  it('without a primary key, every row is inserted, duplicates included', () =>
    withSchema('upsert', async ({ schema, client, observer }) => {
      const table = unkeyed(schema);
      await seed(client, table, [1, 'a']);
      await ingest(client, [table], batchesOf(['2', null, rowsOf(table, [1, 'a'], [1, 'b'])]), {
        upsert: Upsert.IF_PRIMARY_KEY,
      });
      const { rows } = await observer.query(`SELECT id, value FROM "${schema}".unkeyed ORDER BY value`);
      assert.deepEqual(rows, [
        { id: 1, value: 'a' },
        { id: 1, value: 'a' },
        { id: 1, value: 'b' },
      ]);
    }));

  it('a unique index without a primary key is not an upsert key: a duplicate fails the batch', () =>
    withSchema('upsert', async ({ schema, client, observer }) => {
      const table = defineTable({
        schema,
        name: 'unique',
        columns: [{ name: 'id', type: 'integer', unique: true }],
      });
      await seed(client, table, [1]);
      const error = await rejection(() =>
        ingest(client, [table], batchesOf(['2', null, rowsOf(table, [2], [1])])),
      );
      assert.ok(error instanceof PgBulkIngestError && error.context.sqlState === '23505', String(error));
      assert.deepEqual(await selectAll(observer, schema, 'unique'), [{ id: 1 }]);
    }));
});

describe('ingest(): Delete.BEFORE_FIRST_BATCH', () => {
  it('replaces the contents with the first batch; later batches add to it', () =>
    withSchema('delete', async ({ schema, client, observer }) => {
      const [table, plain] = [keyed(schema), unkeyed(schema)];
      await ingest(
        client,
        [table, plain],
        batchesOf([
          '0',
          null,
          [
            [table, [1, 'old']],
            [table, [2, 'old']],
            [plain, [1, 'old']],
          ],
        ]),
      );
      const seenDuringBatch: unknown[] = [];
      async function* firstRows(): AsyncGenerator<Row> {
        yield [table, [2, 'first']];
        // Until the batch commits, other sessions still see the old contents.
        seenDuringBatch.push((await selectAll(observer, schema, 'keyed')).map((r) => r.value));
        yield [table, [3, 'first']];
        yield [plain, [3, 'first']];
      }
      await ingest(
        client,
        [table, plain],
        batchesOf(
          ['1', null, firstRows()],
          [
            '2',
            null,
            [
              [table, [3, 'second']],
              [table, [4, 'second']],
              [plain, [3, 'second']],
            ],
          ],
        ),
        { delete: Delete.BEFORE_FIRST_BATCH },
      );
      assert.deepEqual(seenDuringBatch, [['old', 'old']]);
      assert.deepEqual(await selectAll(observer, schema, 'keyed'), [
        { id: 2, value: 'first' },
        { id: 3, value: 'second' },
        { id: 4, value: 'second' },
      ]);
      const { rows } = await observer.query(`SELECT id, value FROM "${schema}".unkeyed ORDER BY value`);
      assert.deepEqual(rows, [
        { id: 3, value: 'first' },
        { id: 3, value: 'second' },
      ]);
      assert.equal(await storedHighWatermark(observer, schema, 'keyed'), '2');
    }));

  it('with no batches, deletes nothing and leaves the table as it is', () =>
    withSchema('delete', async ({ schema, client, observer }) => {
      const table = keyed(schema);
      await seed(client, table, [1, 'kept']);
      const oid = await tableOid(observer, schema, 'keyed');
      await ingest(client, [table], batchesOf(), { delete: Delete.BEFORE_FIRST_BATCH });
      assert.deepEqual(await selectAll(observer, schema, 'keyed'), [{ id: 1, value: 'kept' }]);
      assert.equal(await tableOid(observer, schema, 'keyed'), oid);
    }));

  it('when the first batch fails, deletes nothing', () =>
    withSchema('delete', async ({ schema, client, observer }) => {
      const table = keyed(schema);
      await seed(client, table, [1, 'kept']);
      function* failing(): Generator<Row> {
        yield [table, [2, 'new']];
        throw new Error('boom');
      }
      await assert.rejects(
        ingest(client, [table], batchesOf(['1', null, failing()]), { delete: Delete.BEFORE_FIRST_BATCH }),
        /boom/,
      );
      assert.deepEqual(await selectAll(observer, schema, 'keyed'), [{ id: 1, value: 'kept' }]);
      assert.equal(await storedHighWatermark(observer, schema, 'keyed'), 'seed');
    }));
});
