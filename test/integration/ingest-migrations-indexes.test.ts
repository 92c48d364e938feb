/**
 * Automatic migrations of indexes against a real PostgreSQL: unique, btree and gin indexes added
 * and removed (in place, CONCURRENTLY); index names and type aliases are no difference.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { type Indexes, migrate, tableOid, withSchema } from '../helpers/ingest.ts';

const id = { name: 'id', type: 'integer', primaryKey: true } as const;
const a = { name: 'a', type: 'text' } as const;

describe('ingest(): migrations of indexes', () => {
  const tags = { name: 'tags', type: 'text[]' } as const;

  it('adds and removes a unique constraint', () =>
    withSchema('migrate', async (f) => {
      const added = await migrate(f, {
        from: { columns: [id, a], rows: [[1, 'x']] },
        to: { columns: [id, { ...a, unique: true }], rows: [[2, 'y']] },
      });
      assert.deepEqual(added.shape.indexes, ['unique btree(a)']);
      const removed = await migrate(f, {
        from: { columns: [id, { ...a, unique: true }], rows: [] },
        to: { columns: [id, a], rows: [[3, 'y']] },
      });
      assert.equal(removed.migrated, false, 'in place');
      assert.deepEqual(removed.shape.indexes, []);
      assert.equal(removed.rows.length, 3, 'a duplicate now allowed');
    }));

  it('adds and removes btree and gin indexes', () =>
    withSchema('migrate', async (f) => {
      const indexes: Indexes = [{ columns: ['a', 'id'] }, { columns: ['tags'], using: 'gin' }];
      const added = await migrate(f, {
        from: { columns: [id, a, tags], rows: [[1, 'x', ['p']]] },
        to: { columns: [id, { ...a, index: true }, tags], indexes, rows: [[2, 'y', ['q', 'r']]] },
      });
      assert.deepEqual(added.shape.indexes, ['btree(a)', 'btree(a, id)', 'gin(tags)']);
      assert.equal(added.rows.length, 2);
      const removed = await migrate(f, {
        from: { columns: [id, { ...a, index: true }, tags], indexes, rows: [] },
        to: { columns: [id, a, tags], indexes: [{ columns: ['a', 'id'] }], rows: [] },
      });
      assert.equal(removed.migrated, false, 'in place');
      assert.deepEqual(removed.shape.indexes, ['btree(a, id)']);
    }));

  it('ignores index names: an index renamed by hand is no difference', () =>
    withSchema('migrate', async (f) => {
      const definition = {
        columns: [id, { ...a, unique: true }, tags],
        indexes: [{ columns: ['tags'], using: 'gin' as const }],
      };
      await migrate(f, { from: { ...definition, rows: [] }, to: { ...definition, rows: [] } });
      const { rows } = await f.observer.query(
        `SELECT indexrelid::regclass::text AS name FROM pg_index WHERE indrelid = '"${f.schema}".t'::regclass ORDER BY 1`,
      );
      const oid = await tableOid(f.observer, f.schema, 't');
      for (const [i, row] of rows.entries())
        await f.observer.query(`ALTER INDEX ${row.name} RENAME TO "mine ${i} Ä"`);
      const result = await migrate(f, {
        from: { ...definition, rows: [[1, 'x', ['t']]] },
        to: { ...definition, rows: [[2, 'y', []]] },
      });
      assert.equal(await tableOid(f.observer, f.schema, 't'), oid);
      assert.equal(result.rows.length, 2);
      const after = await f.observer.query(
        `SELECT count(*)::int AS n FROM pg_class WHERE relname LIKE 'mine _ Ä'`,
      );
      assert.equal(after.rows[0].n, rows.length);
    }));

  it('does not rebuild a table that matches its definition, type aliases included', () =>
    withSchema('migrate', async (f) => {
      const definition = {
        columns: [
          { name: 'id', type: 'int4', primaryKey: true },
          { name: 'Day', type: 'date', primaryKey: true },
          { name: 'name', type: 'varchar(16)', nullable: false, unique: true },
          { name: 'at', type: 'timestamp with time zone', index: true },
          { name: 'amount', type: 'numeric(12,2)' },
          tags,
          { name: 'doc', type: 'jsonb' },
        ],
        indexes: [
          { columns: ['doc'], using: 'gin' as const },
          { columns: ['name', 'at'], unique: true },
        ],
      };
      const row = (n: number) => [n, '2024-01-01', `n${n}`, new Date(0), '1.50', ['x'], { n }];
      const result = await migrate(f, {
        from: { ...definition, rows: [row(1)] },
        to: { ...definition, rows: [row(2)] },
      });
      assert.equal(result.migrated, false);
      assert.equal(result.rows.length, 2);
    }));
});
