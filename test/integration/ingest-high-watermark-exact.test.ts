/**
 * The high watermark through ingest() on real tables, against what the Python library wrote for
 * the same case (test/fixtures/python-comments.json), and values JSON cannot hold.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type pg from 'pg';
import { defineTable, ingest, type Json, PgBulkIngestError } from '../../src/index.ts';
import { parseExactJson, toPlainJson } from '../../src/ingest/exact-json.ts';
import { writeTableComment } from '../../src/ingest/high-watermark.ts';
import { batchesOf, rejection, rowsOf, selectAll, tableComment, withSchema } from '../helpers/ingest.ts';
import { commentRefusedHere, pythonCases, watermarkRefusedHere } from '../helpers/python-comments.ts';

const tableIn = (schema: string, name = 'events') =>
  defineTable({ schema, name, columns: [{ name: 'id', type: 'integer', primaryKey: true }] });

/** Sets a table's comment to exactly `text`, as another program (or the Python library) would. */
async function setComment(client: pg.ClientBase, schema: string, name: string, text: string) {
  await client.query('BEGIN');
  await writeTableComment(client, schema, name, text);
  await client.query('COMMIT');
}

const isCode = (code: string) => (e: unknown) => e instanceof PgBulkIngestError && e.code === code;

describe('ingest(): the high watermark exactly as the Python library stores it', () => {
  it('writes, for each of the 31 cases, the comment Python wrote, or refuses what Python cannot store', () =>
    withSchema('hwpy', async ({ schema, client, observer }) => {
      for (const [i, c] of pythonCases.entries()) {
        const name = `t${i}`;
        const table = tableIn(schema, name);
        await ingest(client, [table], () => []); // creates the table
        if (c.initial !== null) await setComment(client, schema, name, c.initial);
        const before = await tableComment(observer, schema, name);
        const refusal =
          c.error !== undefined
            ? 'INVALID_COMMENT'
            : (commentRefusedHere[c.name] ?? watermarkRefusedHere[c.name]);
        const run = ingest(
          client,
          [table],
          batchesOf([parseExactJson(c.value) as Json, null, rowsOf(table, [1])]),
          {
            highWatermark: '__EARLIEST__',
          },
        );
        if (refusal !== undefined) {
          await assert.rejects(run, isCode(refusal), c.name);
          assert.equal(await tableComment(observer, schema, name), before, `${c.name}: comment untouched`);
          assert.deepEqual(await selectAll(observer, schema, name), [], `${c.name}: nothing written`);
          continue;
        }
        await run;
        assert.equal(await tableComment(observer, schema, name), c.comment, c.name);
      }
    }));

  it('gives batches() every watermark the Python library stored, exactly, as ordinary JavaScript', () =>
    withSchema('hwpy', async ({ schema, client }) => {
      for (const [i, c] of pythonCases.entries()) {
        if (c.comment === undefined) continue;
        const name = `t${i}`;
        const table = tableIn(schema, name);
        await ingest(client, [table], () => []);
        await setComment(client, schema, name, c.comment);
        const calls: unknown[] = [];
        await ingest(client, [table], (hw) => {
          calls.push(hw);
          return [];
        });
        assert.deepEqual(calls, [toPlainJson(parseExactJson(c.value))], c.name);
      }
    }));

  it('stores a bigint watermark exactly and gives it back as a bigint; a safe integer as a number', () =>
    withSchema('hwpy', async ({ schema, client, observer }) => {
      const table = tableIn(schema);
      const hw = { id: 1234567890123456789n, small: 42n, page: 9007199254740993n };
      await ingest(client, [table], batchesOf([hw, null, rowsOf(table, [1])]));
      assert.equal(
        await tableComment(observer, schema, 'events'),
        '{"pg-bulk-ingest": {"high-watermark": {"id": 1234567890123456789, "small": 42, "page": 9007199254740993}}}',
      );
      const calls: unknown[] = [];
      await ingest(client, [table], (w) => {
        calls.push(w);
        return [];
      });
      assert.deepEqual(calls, [{ id: 1234567890123456789n, small: 42, page: 9007199254740993n }]);
    }));

  it('keeps the other keys of a comment exactly: 1234567890123456789 is not rewritten rounded', () =>
    withSchema('hwpy', async ({ schema, client, observer }) => {
      const table = tableIn(schema);
      await ingest(client, [table], () => []);
      await setComment(client, schema, 'events', '{"10": 1234567890123456789, "a": 1.0, "2": {"x": 2.50}}');
      await ingest(client, [table], batchesOf(['new', null, rowsOf(table, [1])]));
      assert.equal(
        await tableComment(observer, schema, 'events'),
        '{"10": 1234567890123456789, "a": 1.0, "2": {"x": 2.5}, "pg-bulk-ingest": {"high-watermark": "new"}}',
      );
    }));

  it('stores a Date watermark as its ISO 8601 string (it was {})', () =>
    withSchema('hwpy', async ({ schema, client, observer }) => {
      const table = tableIn(schema);
      const at = new Date('2024-05-06T07:08:09.123Z');
      await ingest(
        client,
        [table],
        batchesOf([{ at }, null, rowsOf(table, [1])], [() => at, null, rowsOf(table, [2])]),
      );
      assert.equal(
        await tableComment(observer, schema, 'events'),
        '{"pg-bulk-ingest": {"high-watermark": "2024-05-06T07:08:09.123Z"}}',
      );
    }));

  const deep = (depth: number) => {
    let value: unknown = 'bottom';
    for (let i = 0; i < depth; i++) value = [value];
    return value;
  };
  const refused: [string, () => unknown][] = [
    ['undefined', () => undefined],
    ['a callable returning undefined', () => () => undefined],
    ['NaN', () => ({ at: Number.NaN })],
    ['Infinity', () => Number.POSITIVE_INFINITY],
    ['a function inside', () => ({ f: () => 1 })],
    ['a Map', () => new Map([['a', 1]])],
    ['a string holding \\u0000', () => 'a\u0000b'],
    ['a lone surrogate', () => '\ud800'],
    ['a value nested 2,500 deep', () => deep(2_500)],
    ['a value nested 5,000 deep', () => deep(5_000)],
  ];
  for (const [what, make] of refused) {
    it(`refuses ${what} as a watermark, naming the batch, before anything is written`, () =>
      withSchema('hwpy', async ({ schema, client, observer }) => {
        const table = tableIn(schema);
        await ingest(client, [table], batchesOf(['kept', null, rowsOf(table, [1])]));
        const error = await rejection(() =>
          ingest(client, [table], batchesOf([make() as Json, null, rowsOf(table, [2])])),
        );
        assert.ok(isCode('INVALID_JSON_VALUE')(error), String(error));
        assert.match(
          (error as Error).message,
          /^Batch 1: the high watermark cannot be stored as JSON: at \$/,
        );
        assert.equal((error as PgBulkIngestError).context.batch, 1);
        assert.equal(
          await tableComment(observer, schema, 'events'),
          '{"pg-bulk-ingest": {"high-watermark": "kept"}}',
        );
        assert.deepEqual(await selectAll(observer, schema, 'events'), [{ id: 1 }]);
      }));
  }
});
