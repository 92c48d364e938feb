/**
 * Bad rows against a real PostgreSQL: the batch fails with an error naming the table, the row's
 * position in the batch and the column, rolls back, and leaves the high watermark alone.
 * And identifiers of every kind (quotes, capitals, emoji), end to end.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type pg from 'pg';
import {
  Delete,
  defineTable,
  type IngestTable,
  ingest,
  type Row,
  RowError,
  Upsert,
} from '../../src/index.ts';
import {
  batchesOf,
  rejection,
  rowsOf,
  selectAll,
  storedHighWatermark,
  tableComment,
  tableShape,
  withSchema,
} from '../helpers/ingest.ts';

const tableIn = (schema: string, keyed: boolean, name = 'events') =>
  defineTable({
    schema,
    name,
    columns: [
      { name: 'id', type: 'integer', primaryKey: keyed },
      { name: 'n', type: 'integer' },
      { name: 'label', type: 'varchar(8)', nullable: false },
    ],
  });

interface Expected {
  readonly table: IngestTable;
  readonly row: number;
  readonly column?: string;
  readonly sqlState?: string;
}

/** Ingests a good batch, then `rows` as batch 2; checks the error and that batch 2 left nothing. */
async function expectRowError(
  f: { schema: string; client: pg.Client; observer: pg.Client },
  tables: IngestTable[],
  rows: Row[],
  expected: Expected,
  options: { upsert?: (typeof Upsert)[keyof typeof Upsert] } = {},
): Promise<RowError> {
  const first = tables[0] as IngestTable;
  await ingest(f.client, tables, batchesOf(['before', null, rowsOf(first, [0, 0, 'kept'])]), options);
  const error = await rejection(() =>
    ingest(
      f.client,
      tables,
      batchesOf(['ok', null, rowsOf(first, [1, 1, 'kept'])], ['bad', null, rows]),
      options,
    ),
  );
  assert.ok(error instanceof RowError, String(error));
  assert.equal(error.code, 'INVALID_ROW');
  const label = `"${f.schema}"."${expected.table.name}"`;
  assert.equal(error.context.table, label);
  assert.equal(error.context.batch, 2);
  assert.equal(error.context.row, expected.row, `row position in the batch: ${error.message}`);
  assert.equal(error.context.column, expected.column);
  if (expected.sqlState) assert.equal(error.context.sqlState, expected.sqlState);
  assert.ok(error.message.includes(label), `names the table: ${error.message}`);
  assert.match(error.message, new RegExp(`\\b[Rr]ow ${expected.row}\\b`), `names the row: ${error.message}`);
  assert.match(error.message, /\bBatch 2\b/, `names the batch: ${error.message}`);
  if (expected.column)
    assert.ok(error.message.includes(`"${expected.column}"`), `names the column: ${error.message}`);
  for (const table of tables) {
    const ids = new Set((await selectAll(f.observer, f.schema, table.name)).map((r) => r.id));
    assert.deepEqual([...ids], table === first ? [0, 1] : [], `batch 2 rolled back in ${table.name}`);
  }
  assert.equal(await storedHighWatermark(f.observer, f.schema, first.name), 'ok');
  return error;
}

for (const keyed of [true, false]) {
  describe(`ingest(): bad rows (${keyed ? 'upsert through a staging table' : 'plain insert'})`, () => {
    const options = { upsert: keyed ? Upsert.IF_PRIMARY_KEY : Upsert.OFF };

    it('a row with too few or too many values', () =>
      withSchema('bad', async (f) => {
        const t = tableIn(f.schema, keyed);
        await expectRowError(f, [t], rowsOf(t, [2, 2, 'a'], [3, 3]), { table: t, row: 2 }, options);
        await expectRowError(f, [t], rowsOf(t, [4, 4, 'a', 'extra']), { table: t, row: 1 }, options);
      }));

    it('a value PostgreSQL cannot read as its column type', () =>
      withSchema('bad', async (f) => {
        const t = tableIn(f.schema, keyed);
        const rows = rowsOf(t, [2, 2, 'a'], [3, 3, 'b'], [4, 'abc', 'c'], [5, 5, 'd']);
        await expectRowError(f, [t], rows, { table: t, row: 3, column: 'n', sqlState: '22P02' }, options);
      }));

    it('a value too long, and a NULL in a NOT NULL column', () =>
      withSchema('bad', async (f) => {
        const t = tableIn(f.schema, keyed);
        await expectRowError(
          f,
          [t],
          rowsOf(t, [2, 2, 'too long a label']),
          { table: t, row: 1, column: 'label', sqlState: '22001' },
          options,
        );
        await expectRowError(
          f,
          [t],
          rowsOf(t, [2, 2, 'a'], [3, 3, null]),
          { table: t, row: 2, column: 'label', sqlState: '23502' },
          options,
        );
      }));

    it('a value JavaScript cannot write to its column: an object into text, an invalid Date', () =>
      withSchema('bad', async (f) => {
        const t = tableIn(f.schema, keyed);
        await expectRowError(
          f,
          [t],
          rowsOf(t, [2, 2, 'a'], [3, 3, { not: 'text' }]),
          { table: t, row: 2, column: 'label' },
          options,
        );
        await expectRowError(
          f,
          [t],
          rowsOf(t, [2, new Date(Number.NaN), 'a']),
          { table: t, row: 1, column: 'n' },
          options,
        );
      }));

    it('a text value with a NUL character or a lone surrogate, refused before COPY with its column', () =>
      withSchema('bad', async (f) => {
        const t = tableIn(f.schema, keyed);
        for (const text of ['a\u0000b', 'lone \ud800']) {
          const error = await expectRowError(
            f,
            [t],
            rowsOf(t, [2, 2, text]),
            { table: t, row: 1, column: 'label' },
            options,
          );
          assert.match(error.message, /NUL character|lone UTF-16 surrogate/);
          await f.client.query(`DELETE FROM "${f.schema}"."${t.name}"`);
        }
      }));
  });
}

describe('ingest(): bad rows among several tables', () => {
  it('a row that is not a [table, values] pair', () =>
    withSchema('bad', async (f) => {
      const t = tableIn(f.schema, true);
      const error = await rejection(() =>
        ingest(f.client, [t], batchesOf(['1', null, [[t, [1, 1, 'a']], [t] as unknown as Row]])),
      );
      assert.ok(error instanceof RowError && error.context.row === 2, String(error));
      assert.equal(error.context.batch, 1);
    }));

  it('a value JavaScript refuses is placed by its position in the whole batch', () =>
    withSchema('bad', async (f) => {
      const [a, b] = [tableIn(f.schema, true, 'a'), tableIn(f.schema, false, 'b')];
      const rows: Row[] = [
        [a, [2, 2, 'a']],
        [b, [1, 1, 'b']],
        [a, [3, 3, 'a']],
        [b, [2, 2, { bad: 1 }]],
      ];
      await expectRowError(f, [a, b], rows, { table: b, row: 4, column: 'label' });
    }));

  // Regression: COPY errors used to count rows per table, not in the batch, so with interleaved
  // tables PostgreSQL's refusals and JavaScript's disagreed.
  it('a value PostgreSQL refuses is placed by its position in the whole batch', () =>
    withSchema('bad', async (f) => {
      const [a, b] = [tableIn(f.schema, true, 'a'), tableIn(f.schema, false, 'b')];
      const rows: Row[] = [
        [a, [2, 2, 'a']],
        [b, [1, 1, 'b']],
        [a, [3, 3, 'a']],
        [b, [2, 'abc', 'b']],
      ];
      await expectRowError(f, [a, b], rows, { table: b, row: 4, column: 'n', sqlState: '22P02' });
    }));
});

describe('ingest(): identifiers of every kind', () => {
  it('quotes, capitals, spaces and emoji in schema, table, column names work end to end', () =>
    withSchema('Bad "Sch" 🐘', async ({ schema, client, observer }) => {
      const define = (extra: boolean) =>
        defineTable({
          schema,
          name: 'Tä "b" 🦄',
          columns: [
            { name: 'Id "K" 🔑', type: 'integer', primaryKey: true },
            ...(extra ? [{ name: 'NEW col;--', type: 'integer' }] : []),
            { name: "Näme 'q' 😀", type: 'text', unique: true },
            { name: '_pgbi_row', type: 'text[]' },
          ],
          indexes: [{ columns: ['_pgbi_row'], using: 'gin' }],
        });
      const [before, after] = [define(false), define(true)];
      await ingest(
        client,
        [before],
        batchesOf(['1', null, rowsOf(before, [1, 'one', ['x']], [2, 'two', null])]),
      );
      const seen: string[] = [];
      await ingest(
        client,
        [after],
        batchesOf([
          '2 🐘',
          null,
          rowsOf(after, [2, 22, 'TWO', ['y']], [2, 20, 'two again', ['z']], [3, 30, 'three', []]),
        ]),
        { onBeforeVisible: (_c, table) => void seen.push(`${table.schema}.${table.name}`) },
      );
      assert.deepEqual(seen, [`${schema}.Tä "b" 🦄`]);
      assert.deepEqual(await selectAll(observer, schema, 'Tä "b" 🦄'), [
        { 'Id "K" 🔑': 1, 'NEW col;--': null, "Näme 'q' 😀": 'one', _pgbi_row: ['x'] },
        { 'Id "K" 🔑': 2, 'NEW col;--': 20, "Näme 'q' 😀": 'two again', _pgbi_row: ['z'] },
        { 'Id "K" 🔑': 3, 'NEW col;--': 30, "Näme 'q' 😀": 'three', _pgbi_row: [] },
      ]);
      assert.deepEqual(await tableShape(observer, schema, 'Tä "b" 🦄'), {
        columns: ['Id "K" 🔑 integer NOT NULL', 'NEW col;-- integer', "Näme 'q' 😀 text", '_pgbi_row text[]'],
        primaryKey: ['Id "K" 🔑'],
        indexes: ['gin(_pgbi_row)', "unique btree(Näme 'q' 😀)"],
      });
      assert.equal(
        await tableComment(observer, schema, 'Tä "b" 🦄'),
        '{"pg-bulk-ingest": {"high-watermark": "2 \\ud83d\\udc18"}}',
      );
      await ingest(client, [after], batchesOf(['3', null, rowsOf(after, [9, 9, 'nine', null])]), {
        delete: Delete.BEFORE_FIRST_BATCH,
      });
      assert.deepEqual(
        (await selectAll(observer, schema, 'Tä "b" 🦄')).map((r) => r['Id "K" 🔑']),
        [9],
      );
    }));
});
