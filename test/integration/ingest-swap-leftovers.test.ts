import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Delete, defineTable, ingest } from '../../src/index.ts';
import { qualifiedName } from '../../src/ingest/sql.ts';
import { batchesOf, rowsOf, tableComment, withSchema } from '../helpers/ingest.ts';

describe('after a table is replaced', () => {
  it("its indexes and primary key constraint carry the live table's names, not the temporary ones", () =>
    withSchema('swap_names', async ({ schema, client }) => {
      const v1 = defineTable({
        schema,
        name: 'Orders',
        columns: [
          { name: 'id', type: 'integer', primaryKey: true },
          { name: 'v', type: 'text', index: true },
        ],
      });
      await ingest(client, [v1], batchesOf([1, null, rowsOf(v1, [1, 'a'])]));
      const v2 = defineTable({
        schema,
        name: 'Orders',
        columns: [
          { name: 'id', type: 'bigint', primaryKey: true },
          { name: 'v', type: 'text', index: true },
        ],
      });
      await ingest(client, [v2], batchesOf([2, null, rowsOf(v2, [2, 'b'])]));
      const { rows } = await client.query<{ name: string }>(
        `SELECT c.relname AS name FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = $1 ORDER BY 1`,
        [schema],
      );
      assert.deepEqual(
        rows.map((r) => r.name),
        ['Orders', 'Orders_pkey', 'Orders_v_idx'],
      );
      const constraint = await client.query(
        `SELECT conname FROM pg_constraint WHERE conrelid = $1::regclass AND contype = 'p'`,
        [qualifiedName(schema, 'Orders')],
      );
      assert.equal(constraint.rows[0]?.conname, 'Orders_pkey');
    }));

  it('a second table keeps its own comment through Delete.BEFORE_FIRST_BATCH', () =>
    withSchema('swap_comment', async ({ schema, client }) => {
      const first = defineTable({ schema, name: 'first', columns: [{ name: 'id', type: 'integer' }] });
      const second = defineTable({ schema, name: 'second', columns: [{ name: 'id', type: 'integer' }] });
      await ingest(
        client,
        [first, second],
        batchesOf([1, null, [...rowsOf(first, [1]), ...rowsOf(second, [1])]]),
      );
      await client.query(`COMMENT ON TABLE ${qualifiedName(schema, 'second')} IS 'Owned by the data team'`);
      await ingest(client, [first, second], batchesOf([2, null, rowsOf(second, [2])]), {
        delete: Delete.BEFORE_FIRST_BATCH,
      });
      assert.equal(await tableComment(client, schema, 'second'), 'Owned by the data team');
      assert.equal(await tableComment(client, schema, 'first'), '{"pg-bulk-ingest": {"high-watermark": 2}}');
      const { rows } = await client.query(`SELECT id FROM ${qualifiedName(schema, 'second')}`);
      assert.deepEqual(rows, [{ id: 2 }]);
    }));
});
