/**
 * Automatic migrations against a real PostgreSQL: a live table that differs from its definition
 * in its columns is rebuilt at the first batch and swapped in at its commit, the old one readable
 * until then. Indexes, and tables left alone: ingest-migrations-indexes.test.ts.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Delete, defineTable, ingest, PgBulkIngestError, type Row } from '../../src/index.ts';
import {
  backendPid,
  batchesOf,
  migrate,
  rejection,
  rowsOf,
  selectAll,
  tableOid,
  tableShape,
  withSchema,
} from '../helpers/ingest.ts';
import { connect, uniqueName } from '../helpers/pg.ts';

const id = { name: 'id', type: 'integer', primaryKey: true } as const;
const a = { name: 'a', type: 'text' } as const;
const b = { name: 'b', type: 'integer' } as const;

describe('ingest(): migrations of columns', () => {
  it('adds a column at the end, keeping the rows (in place: same table)', () =>
    withSchema('migrate', async (f) => {
      const result = await migrate(f, {
        from: { columns: [id, a], rows: [[1, 'x']] },
        to: { columns: [id, a, b], rows: [[2, 'y', 5]] },
      });
      assert.equal(result.migrated, false);
      assert.deepEqual(result.shape.columns, ['id integer NOT NULL', 'a text', 'b integer']);
      assert.deepEqual(result.rows, [
        { id: 1, a: 'x', b: null },
        { id: 2, a: 'y', b: 5 },
      ]);
    }));

  it('adds a column in the middle, in the defined order', () =>
    withSchema('migrate', async (f) => {
      const result = await migrate(f, {
        from: { columns: [id, a], rows: [[1, 'x']] },
        to: { columns: [id, b, a], rows: [[2, 5, 'y']] },
      });
      assert.deepEqual(result.shape.columns, ['id integer NOT NULL', 'b integer', 'a text']);
      assert.deepEqual(result.rows, [
        { id: 1, b: null, a: 'x' },
        { id: 2, b: 5, a: 'y' },
      ]);
    }));

  it('removes a column', () =>
    withSchema('migrate', async (f) => {
      const result = await migrate(f, {
        from: { columns: [id, a, b], rows: [[1, 'x', 7]] },
        to: { columns: [id, b], rows: [[2, 8]] },
      });
      assert.deepEqual(result.shape.columns, ['id integer NOT NULL', 'b integer']);
      assert.deepEqual(result.rows, [
        { id: 1, b: 7 },
        { id: 2, b: 8 },
      ]);
    }));

  it('changes integer to bigint', () =>
    withSchema('migrate', async (f) => {
      const result = await migrate(f, {
        from: { columns: [id, b], rows: [[1, 2147483647]] },
        to: { columns: [id, { name: 'b', type: 'bigint' }], rows: [[2, 2n ** 62n]] },
      });
      assert.deepEqual(result.shape.columns, ['id integer NOT NULL', 'b bigint']);
      assert.deepEqual(result.rows, [
        { id: 1, b: '2147483647' },
        { id: 2, b: String(2n ** 62n) },
      ]);
    }));

  it('changes text to integer when the data casts', () =>
    withSchema('migrate', async (f) => {
      const result = await migrate(f, {
        from: {
          columns: [id, { name: 'b', type: 'text' }],
          rows: [
            [1, '42'],
            [2, null],
          ],
        },
        to: { columns: [id, b], rows: [[3, 7]] },
      });
      assert.deepEqual(result.shape.columns, ['id integer NOT NULL', 'b integer']);
      assert.deepEqual(result.rows, [
        { id: 1, b: 42 },
        { id: 2, b: null },
        { id: 3, b: 7 },
      ]);
    }));

  it('fails the batch, losing nothing, when the existing data does not cast', () =>
    withSchema('migrate', async (f) => {
      const error = await rejection(() =>
        migrate(f, {
          from: { columns: [id, { name: 'b', type: 'text' }], rows: [[1, 'abc']] },
          to: { columns: [id, b], rows: [[2, 7]] },
        }),
      );
      assert.ok(error instanceof PgBulkIngestError && error.context.sqlState === '22P02', String(error));
      assert.deepEqual((await tableShape(f.observer, f.schema, 't')).columns, [
        'id integer NOT NULL',
        'b text',
      ]);
      assert.deepEqual(await selectAll(f.observer, f.schema, 't'), [{ id: 1, b: 'abc' }]);
    }));

  it('makes a column NOT NULL, and nullable again', () =>
    withSchema('migrate', async (f) => {
      const notNull = await migrate(f, {
        from: { columns: [id, a], rows: [[1, 'x']] },
        to: { columns: [id, { ...a, nullable: false }], rows: [[2, 'y']] },
      });
      assert.deepEqual(notNull.shape.columns, ['id integer NOT NULL', 'a text NOT NULL']);
      const nullable = await migrate(f, {
        from: { columns: [id, { ...a, nullable: false }], rows: [] },
        to: { columns: [id, a], rows: [[3, null]] },
      });
      assert.equal(nullable.migrated, false, 'DROP NOT NULL is done in place');
      assert.deepEqual(nullable.shape.columns, ['id integer NOT NULL', 'a text']);
      assert.deepEqual(nullable.rows.length, 3);
    }));

  it('changes the primary key, and upserts on the new one', () =>
    withSchema('migrate', async (f) => {
      const result = await migrate(f, {
        from: {
          columns: [id, { name: 'k', type: 'text' }, b],
          rows: [
            [1, 'p', 10],
            [2, 'q', 20],
          ],
        },
        to: {
          columns: [{ name: 'id', type: 'integer' }, { name: 'k', type: 'text', primaryKey: true }, b],
          rows: [
            [9, 'q', 21],
            [3, 'r', 30],
          ],
        },
      });
      assert.deepEqual(result.shape.primaryKey, ['k']);
      assert.deepEqual(result.shape.columns, ['id integer', 'k text NOT NULL', 'b integer']);
      assert.deepEqual(result.rows, [
        { id: 1, k: 'p', b: 10 },
        { id: 3, k: 'r', b: 30 },
        { id: 9, k: 'q', b: 21 },
      ]);
    }));

  it('upserts the batch into the migrated table, over the rows it kept', () =>
    withSchema('migrate', async (f) => {
      const result = await migrate(f, {
        from: {
          columns: [id, a],
          rows: [
            [1, 'x'],
            [2, 'y'],
          ],
        },
        to: {
          columns: [id, a, b],
          rows: [
            [2, 'Y', 7],
            [2, 'Y2', 8],
          ],
        },
      });
      assert.deepEqual(result.rows, [
        { id: 1, a: 'x', b: null },
        { id: 2, a: 'Y2', b: 8 },
      ]);
    }));
});

describe('ingest(): when migrations happen', () => {
  it("keeps other tables' foreign keys to the migrated table, and fails the batch rather than drop one", () =>
    withSchema('migrate', async (f) => {
      const from = defineTable({ schema: f.schema, name: 't', columns: [id, a] });
      await ingest(f.client, [from], batchesOf(['1', null, rowsOf(from, [1, 'x'], [2, 'y'])]));
      await f.observer.query(`CREATE TABLE "${f.schema}".child (t_id integer REFERENCES "${f.schema}".t ON DELETE CASCADE);
        INSERT INTO "${f.schema}".child VALUES (1)`);
      const to = defineTable({ schema: f.schema, name: 't', columns: [id, a, b] });
      await ingest(f.client, [to], batchesOf(['2', null, rowsOf(to, [3, 'z', 5])]));
      const fks = `SELECT pg_get_constraintdef(oid) AS def FROM pg_constraint WHERE conrelid = '"${f.schema}".child'::regclass`;
      assert.deepEqual((await f.observer.query(fks)).rows, [
        { def: `FOREIGN KEY (t_id) REFERENCES ${f.schema}.t(id) ON DELETE CASCADE` },
      ]);
      // Delete.BEFORE_FIRST_BATCH without row 1, which child references: the batch fails, nothing changes.
      const error = await rejection(() =>
        ingest(f.client, [to], batchesOf(['3', null, rowsOf(to, [4, 'w', 6])]), {
          delete: Delete.BEFORE_FIRST_BATCH,
        }),
      );
      assert.match((error as Error).message, /violates foreign key constraint "child_t_id_fkey"/);
      assert.deepEqual(
        (await selectAll(f.observer, f.schema, 't')).map((r) => r.id),
        [1, 2, 3],
      );
      assert.equal((await f.observer.query(fks)).rows.length, 1);
    }));

  it('with no batches, migrates nothing', () =>
    withSchema('migrate', async (f) => {
      const from = defineTable({ schema: f.schema, name: 't', columns: [id, a] });
      await ingest(f.client, [from], batchesOf(['1', null, rowsOf(from, [1, 'x'])]));
      const oid = await tableOid(f.observer, f.schema, 't');
      const to = defineTable({
        schema: f.schema,
        name: 't',
        columns: [id, b, a],
        indexes: [{ columns: ['a'] }],
      });
      await ingest(f.client, [to], batchesOf());
      assert.equal(await tableOid(f.observer, f.schema, 't'), oid);
      assert.deepEqual(await tableShape(f.observer, f.schema, 't'), {
        columns: ['id integer NOT NULL', 'a text'],
        primaryKey: ['id'],
        indexes: [],
      });
      assert.deepEqual(await selectAll(f.observer, f.schema, 't'), [{ id: 1, a: 'x' }]);
    }));

  it('keeps the old table readable by other sessions while the batch runs, and not locked exclusively', () =>
    withSchema('migrate', async (f) => {
      const from = defineTable({ schema: f.schema, name: 't', columns: [id, a] });
      await ingest(f.client, [from], batchesOf(['1', null, rowsOf(from, [1, 'x'])]));
      const oid = await tableOid(f.observer, f.schema, 't');
      const pid = await backendPid(f.client);
      // A column in the middle: rebuilt (in-place changes are made before the batch starts).
      const to = defineTable({ schema: f.schema, name: 't', columns: [id, b, a] });
      const seen: unknown[] = [];
      async function* rows(): AsyncGenerator<Row> {
        yield [to, [2, 1, 'y']];
        await f.observer.query("SET lock_timeout = '1s'");
        seen.push(await selectAll(f.observer, f.schema, 't'));
        const locks = await f.observer.query('SELECT mode FROM pg_locks WHERE pid = $1 AND relation = $2', [
          pid,
          oid,
        ]);
        seen.push(locks.rows.map((r) => r.mode));
        yield [to, [3, 2, 'z']];
      }
      await ingest(f.client, [to], batchesOf(['2', null, rows()]));
      assert.deepEqual(seen[0], [{ id: 1, a: 'x' }], 'the old shape and rows');
      assert.ok(!(seen[1] as string[]).includes('AccessExclusiveLock'), `locks: ${seen[1]}`);
      assert.notEqual(await tableOid(f.observer, f.schema, 't'), oid);
      assert.deepEqual(await selectAll(f.observer, f.schema, 't'), [
        { id: 1, b: null, a: 'x' },
        { id: 2, b: 1, a: 'y' },
        { id: 3, b: 2, a: 'z' },
      ]);
    }));

  it('keeps a SELECT grant and a dependent view across a migration', () =>
    withSchema('migrate', async (f) => {
      const role = uniqueName('reader');
      const from = defineTable({ schema: f.schema, name: 't', columns: [id, a] });
      await ingest(f.client, [from], batchesOf(['1', null, rowsOf(from, [1, 'x'])]));
      await f.observer.query(`CREATE ROLE "${role}";
        GRANT USAGE ON SCHEMA "${f.schema}" TO "${role}";
        GRANT SELECT ON "${f.schema}".t TO "${role}";
        CREATE VIEW "${f.schema}".v AS SELECT id, a FROM "${f.schema}".t;
        GRANT SELECT ON "${f.schema}".v TO "${role}"`);
      try {
        const to = defineTable({ schema: f.schema, name: 't', columns: [id, b, a] });
        await ingest(f.client, [to], batchesOf(['2', null, rowsOf(to, [2, 5, 'y'])]));
        const reader = await connect();
        try {
          await reader.query(`SET ROLE "${role}"`);
          const table = await reader.query(`SELECT id, b, a FROM "${f.schema}".t ORDER BY id`);
          const view = await reader.query(`SELECT * FROM "${f.schema}".v ORDER BY id`);
          assert.deepEqual(table.rows, [
            { id: 1, b: null, a: 'x' },
            { id: 2, b: 5, a: 'y' },
          ]);
          assert.deepEqual(view.rows, [
            { id: 1, a: 'x' },
            { id: 2, a: 'y' },
          ]);
        } finally {
          await reader.end();
        }
      } finally {
        await f.observer.query(`DROP OWNED BY "${role}"; DROP ROLE "${role}"`);
      }
    }));
});
