/**
 * The upsert merge pays for de-duplication only when a key repeats in the batch: a
 * batch without repeated keys is merged straight from staging; one with repeated keys falls back
 * to the DISTINCT ON merge, and the last row still wins, with nothing left of the failed attempt.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type pg from 'pg';
import { defineTable, type IngestTable, ingest, Upsert } from '../../src/index.ts';
import { createStagingTable, mergeStagedRows, ordinalColumnName } from '../../src/ingest/merge.ts';
import { batchesOf, rowsOf, selectAll, withSchema } from '../helpers/ingest.ts';

const keyed = (schema: string) =>
  defineTable({
    schema,
    name: 'keyed',
    columns: [
      { name: 'id', type: 'integer', primaryKey: true },
      { name: 'value', type: 'text' },
    ],
  });

/** Stages `values` (in this order) and merges them into `table`, in one committed transaction. */
async function stageAndMerge(client: pg.Client, table: IngestTable, ...values: [number, string][]) {
  const ordinal = ordinalColumnName(table);
  await client.query('BEGIN');
  await createStagingTable(client, table, 'stage', ordinal);
  for (const [i, [id, value]] of values.entries())
    await client.query('INSERT INTO pg_temp.stage VALUES ($1, $2, $3)', [i + 1, id, value]);
  const result = await mergeStagedRows(client, table, 'stage', ordinal, table.name);
  await client.query('COMMIT');
  return result;
}

describe('upsert merge: de-duplication only when a key repeats', () => {
  it('a batch whose keys do not repeat is merged without de-duplication', () =>
    withSchema('merge', async ({ schema, client, observer }) => {
      const table = keyed(schema);
      await ingest(client, [table], batchesOf(['seed', null, rowsOf(table, [1, 'a'])]));
      const result = await stageAndMerge(client, table, [2, 'b'], [1, 'A']);
      assert.deepEqual(result, { rows: 2, deduplicated: false });
      assert.deepEqual(await selectAll(observer, schema, 'keyed'), [
        { id: 1, value: 'A' },
        { id: 2, value: 'b' },
      ]);
    }));

  it('a batch with a repeated key is de-duplicated: the last row wins', () =>
    withSchema('merge', async ({ schema, client, observer }) => {
      const table = keyed(schema);
      await ingest(client, [table], batchesOf(['seed', null, rowsOf(table, [1, 'a'])]));
      const result = await stageAndMerge(client, table, [1, 'first'], [2, 'b'], [1, 'last']);
      assert.deepEqual(result, { rows: 2, deduplicated: true });
      assert.deepEqual(await selectAll(observer, schema, 'keyed'), [
        { id: 1, value: 'last' },
        { id: 2, value: 'b' },
      ]);
    }));

  it('ingest() writes a batch without repeated keys in batch order: it was not sorted', () =>
    withSchema('merge', async ({ schema, client, observer }) => {
      // Into an empty table, rows land in the heap in the order the merge inserted them: batch
      // order straight from staging, key order after DISTINCT ON's sort.
      const table = keyed(schema);
      await ingest(client, [table], batchesOf(['1', null, rowsOf(table, [3, 'c'], [1, 'a'], [2, 'b'])]), {
        upsert: Upsert.IF_PRIMARY_KEY,
      });
      const { rows } = await observer.query(`SELECT id FROM "${schema}".keyed ORDER BY ctid`);
      assert.deepEqual(
        rows.map((r) => r.id),
        [3, 1, 2],
      );
    }));

  it('ingest(): when the repeat comes after rows were already written, the fallback leaves only the last rows', () =>
    withSchema('merge', async ({ schema, client, observer }) => {
      const table = keyed(schema);
      await ingest(client, [table], batchesOf(['seed', null, rowsOf(table, [1, 'a'], [2, 'b'], [3, 'c'])]));
      // The optimistic statement inserts 4, updates 1 and inserts 5 before it meets 4 again.
      const rows = rowsOf(table, [4, 'first'], [1, 'A'], [5, 'e'], [4, 'second'], [3, 'C'], [4, 'last']);
      await ingest(client, [table], batchesOf(['2', null, rows]), { upsert: Upsert.IF_PRIMARY_KEY });
      assert.deepEqual(await selectAll(observer, schema, 'keyed'), [
        { id: 1, value: 'A' },
        { id: 2, value: 'b' },
        { id: 3, value: 'C' },
        { id: 4, value: 'last' },
        { id: 5, value: 'e' },
      ]);
    }));
});
