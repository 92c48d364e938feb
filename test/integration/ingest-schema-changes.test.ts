/**
 * `schemaChanges` against a real PostgreSQL, as in a rolling deploy: two producer versions send
 * two definitions of one table, alternating. ADDITIVE grows the table once and loses no value
 * whichever version writes; FREEZE refuses any difference with a readable diff; APPLY follows
 * the definition (and so loses the newer column's values each time the old one wins).
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  defineTable,
  type IngestTable,
  ingest,
  PgBulkIngestError,
  SchemaChangeError,
  SchemaChanges,
} from '../../src/index.ts';
import { runIngest } from '../../src/ingest/ingest.ts';
import { batchesOf, rejection, rowsOf, selectAll, tableShape, withSchema } from '../helpers/ingest.ts';

/** The old producer's table: no `note`, a narrower `name` and `n`. */
const v1 = (schema: string) =>
  defineTable({
    schema,
    name: 't',
    columns: [
      { name: 'id', type: 'integer', primaryKey: true },
      { name: 'name', type: 'varchar(8)' },
      { name: 'n', type: 'integer' },
    ],
  });

/** The new producer's table: `name` and `n` widened, `note` added (NOT NULL, and indexed). */
const v2 = (schema: string) =>
  defineTable({
    schema,
    name: 't',
    columns: [
      { name: 'id', type: 'integer', primaryKey: true },
      { name: 'name', type: 'varchar(32)' },
      { name: 'n', type: 'bigint' },
      { name: 'note', type: 'text', nullable: false, index: true },
    ],
  });

/**
 * Batch i (1-based) of the rolling deploy: odd from v2, even from v1, which also updates row
 * i-1. v2's `n` is past integer range unless `small`.
 */
function rollingBatch(schema: string, i: number, small = false): { table: IngestTable; rows: unknown[][] } {
  const n = small ? BigInt(i) : 2n ** 40n + BigInt(i);
  if (i % 2 === 1) return { table: v2(schema), rows: [[i, `new-${i}-padded-past-8`, n, `note ${i}`]] };
  return {
    table: v1(schema),
    rows: [
      [i, `old-${i}`, i],
      [i - 1, `upd-${i - 1}`, i - 1],
    ],
  };
}

describe('ingest(): schemaChanges', () => {
  it('ADDITIVE: 20 batches alternating two definitions lose no value, and the table grows once', () =>
    withSchema('additive', async (f) => {
      let migrations = 0;
      for (let i = 1; i <= 20; i++) {
        const { table, rows } = rollingBatch(f.schema, i);
        await runIngest(
          f.client,
          [table],
          batchesOf([String(i), null, rowsOf(table, ...rows)]),
          { schemaChanges: SchemaChanges.ADDITIVE },
          undefined,
          (report) => {
            migrations += report.migratedTables;
          },
        );
      }
      // Created by batch 1 (v2). Batch 2 (v1) knows no `note`, so its NOT NULL goes (in place);
      // from then on, each version writes into the live shape as it is.
      assert.equal(migrations, 1);
      assert.deepEqual((await tableShape(f.observer, f.schema, 't')).columns, [
        'id integer NOT NULL',
        'name character varying(32)',
        'n bigint',
        'note text',
      ]);
      const rows = await selectAll(f.observer, f.schema, 't');
      assert.equal(rows.length, 20);
      for (let i = 1; i <= 20; i += 2) {
        // Written by v2, then updated by v1, which does not know `note`: the note is kept.
        assert.deepEqual(rows[i - 1], {
          id: i,
          name: `upd-${i}`,
          n: String(i),
          note: `note ${i}`,
        });
        assert.deepEqual(rows[i], { id: i + 1, name: `old-${i + 1}`, n: String(i + 1), note: null });
      }
    }));

  it('ADDITIVE: a table made by the old definition grows to take the new one (rebuilt once for int → bigint)', () =>
    withSchema('additive', async (f) => {
      const options = { schemaChanges: SchemaChanges.ADDITIVE };
      const old = v1(f.schema);
      await ingest(f.client, [old], batchesOf(['0', null, rowsOf(old, [100, 'old', 7])]), options);
      const paths: string[] = [];
      for (let i = 1; i <= 20; i++) {
        const { table, rows } = rollingBatch(f.schema, i);
        await runIngest(
          f.client,
          [table],
          batchesOf([String(i), null, rowsOf(table, ...rows)]),
          options,
          undefined,
          (r) => paths.push(...r.migrations.map((m) => m.path)),
        );
      }
      assert.deepEqual(paths, ['rebuild'], 'only the first switch to v2 migrates');
      assert.deepEqual(await tableShape(f.observer, f.schema, 't'), {
        columns: ['id integer NOT NULL', 'name character varying(32)', 'n bigint', 'note text'],
        primaryKey: ['id'],
        indexes: ['btree(note)'],
      });
      const rows = await selectAll(f.observer, f.schema, 't');
      assert.equal(rows.length, 21, JSON.stringify(rows.map((r) => r.id)));
      assert.deepEqual(rows.at(-1), { id: 100, name: 'old', n: '7', note: null });
      for (let i = 1; i <= 20; i += 2) assert.equal(rows[i - 1]?.note, `note ${i}`);
    }));

  it('ADDITIVE: new columns and wider varchars alone are added in place', () =>
    withSchema('additive', async (f) => {
      const options = { schemaChanges: SchemaChanges.ADDITIVE };
      const old = defineTable({
        schema: f.schema,
        name: 't',
        columns: [
          { name: 'id', type: 'integer', primaryKey: true },
          { name: 'name', type: 'varchar(8)' },
        ],
      });
      const next = defineTable({
        schema: f.schema,
        name: 't',
        columns: [
          { name: 'id', type: 'integer', primaryKey: true },
          { name: 'name', type: 'varchar(32)' },
          { name: 'note', type: 'text' },
        ],
      });
      await ingest(f.client, [old], batchesOf(['1', null, rowsOf(old, [1, 'a'])]), options);
      const paths: string[] = [];
      for (const [i, table] of [next, old, next].entries()) {
        const values = table === next ? [i + 2, 'b'.repeat(20), 'x'] : [i + 2, 'c'];
        await runIngest(
          f.client,
          [table],
          batchesOf([String(i + 2), null, rowsOf(table, values)]),
          options,
          undefined,
          (r) => paths.push(...r.migrations.map((m) => m.path)),
        );
      }
      assert.deepEqual(paths, ['in-place']);
    }));

  it('ADDITIVE: a primary key difference fails the batch, not retryable, naming the difference', () =>
    withSchema('additive', async (f) => {
      await ingest(f.client, [v1(f.schema)], batchesOf(['1', null, rowsOf(v1(f.schema), [1, 'a', 1])]));
      const other = defineTable({
        schema: f.schema,
        name: 't',
        columns: [
          { name: 'id', type: 'integer' },
          { name: 'name', type: 'varchar(8)', primaryKey: true },
        ],
      });
      const error = await rejection(() =>
        ingest(f.client, [other], batchesOf(['2', null, rowsOf(other, [2, 'b'])]), {
          schemaChanges: SchemaChanges.ADDITIVE,
        }),
      );
      assert.ok(error instanceof SchemaChangeError, String(error));
      assert.equal(error.retryable, false);
      assert.match(error.message, /primary key: \("id"\) in the table, \("name"\) in the definition/);
    }));

  it('FREEZE: the first batch whose definition differs fails with a diff of table vs definition, and changes nothing', () =>
    withSchema('freeze', async (f) => {
      const options = { schemaChanges: SchemaChanges.FREEZE };
      const failures: unknown[] = [];
      for (let i = 1; i <= 20; i++) {
        const { table, rows } = rollingBatch(f.schema, i);
        try {
          await ingest(f.client, [table], batchesOf([String(i), null, rowsOf(table, ...rows)]), options);
        } catch (error) {
          failures.push(error);
          break; // the queue parks the stream here: later batches wait behind it
        }
      }
      assert.equal(failures.length, 1);
      const error = failures[0];
      assert.ok(error instanceof SchemaChangeError, String(error));
      assert.ok(error instanceof PgBulkIngestError);
      assert.equal(error.code, 'SCHEMA_CHANGE_REFUSED');
      assert.equal(error.retryable, false);
      assert.equal(error.context.table, `${f.schema}.t`);
      assert.deepEqual(error.differences, [
        'column "note" text NOT NULL: in the table, not in the definition',
        'column "name": character varying(32) in the table, character varying(8) in the definition',
        'column "n": bigint in the table, integer in the definition',
        'index "t_note_idx" btree ("note"): in the table, not in the definition',
      ]);
      assert.match(error.message, /SchemaChanges\.FREEZE/);
      assert.deepEqual(await selectAll(f.observer, f.schema, 't'), [
        { id: 1, name: 'new-1-padded-past-8', n: String(2n ** 40n + 1n), note: 'note 1' },
      ]);
    }));

  it('APPLY (the default) follows the definition: the old one drops the new column', () =>
    withSchema('apply', async (f) => {
      for (let i = 1; i <= 2; i++) {
        const { table, rows } = rollingBatch(f.schema, i, true);
        await ingest(f.client, [table], batchesOf([String(i), null, rowsOf(table, ...rows)]));
      }
      assert.deepEqual((await tableShape(f.observer, f.schema, 't')).columns, [
        'id integer NOT NULL',
        'name character varying(8)',
        'n integer',
      ]);
    }));

  it('refuses an unknown schemaChanges value', () =>
    withSchema('apply', async (f) => {
      const error = await rejection(() =>
        ingest(f.client, [v1(f.schema)], batchesOf(), { schemaChanges: 'grow' as SchemaChanges }),
      );
      assert.match(
        (error as Error).message,
        /Expected `schemaChanges` to be one of '__APPLY__', '__ADDITIVE__', '__FREEZE__', got `grow`/,
      );
    }));
});
