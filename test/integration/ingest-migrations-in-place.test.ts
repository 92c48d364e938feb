/**
 * In-place migrations against a real PostgreSQL: each difference PostgreSQL applies without a
 * rewrite is made with ALTER on the live table (same oid, same relfilenode, views untouched,
 * rows kept); every other difference still rebuilds the table; an ALTER that cannot get its
 * lock gives up and retries instead of queueing readers behind it.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import type pg from 'pg';
import { BatchError, defineTable, ingest } from '../../src/index.ts';
import { runIngest } from '../../src/ingest/ingest.ts';
import type { BatchReport } from '../../src/ingest/ingest-batch.ts';
import {
  batchesOf,
  type Columns,
  type Indexes,
  rejection,
  rowsOf,
  selectAll,
  tableShape,
  withSchema,
} from '../helpers/ingest.ts';
import { connect } from '../helpers/pg.ts';

interface Version {
  readonly columns: Columns;
  readonly indexes?: Indexes;
  readonly rows: unknown[][];
}

interface Case {
  readonly name: string;
  readonly from: Version;
  readonly to: Version;
  /** SQL run after `from` is ingested, `%t` standing for the table and `%s` for its schema. */
  readonly setup?: string;
}

const id = { name: 'id', type: 'integer', primaryKey: true } as const;

/** What a table is, physically and to the views on it. */
async function identity(client: pg.ClientBase, schema: string) {
  const { rows } = await client.query(
    `SELECT c.oid::int AS oid, c.relfilenode::int AS relfilenode,
            (SELECT oid::int FROM pg_class WHERE oid = to_regclass($2)) AS view
       FROM pg_class c WHERE c.oid = to_regclass($1)`,
    [`"${schema}".t`, `"${schema}".v`],
  );
  return rows[0] as { oid: number; relfilenode: number; view: number };
}

/** Ingests `from`, puts a view on it, then ingests `to`; returns identities and the report. */
async function migrateWithView(f: { schema: string; client: pg.Client; observer: pg.Client }, c: Case) {
  const define = (v: Version) =>
    defineTable({ schema: f.schema, name: 't', columns: v.columns, indexes: v.indexes ?? [] });
  const from = define(c.from);
  await ingest(f.client, [from], batchesOf(['1', null, rowsOf(from, ...c.from.rows)]));
  await f.observer.query(`CREATE VIEW "${f.schema}".v AS SELECT id FROM "${f.schema}".t`);
  if (c.setup)
    await f.observer.query(c.setup.replaceAll('%t', `"${f.schema}".t`).replaceAll('%s', `"${f.schema}"`));
  const before = await identity(f.observer, f.schema);
  const to = define(c.to);
  const reports: BatchReport[] = [];
  await runIngest(f.client, [to], batchesOf(['2', null, rowsOf(to, ...c.to.rows)]), {}, undefined, (r) =>
    reports.push(r),
  );
  return { before, after: await identity(f.observer, f.schema), report: reports[0] as BatchReport };
}

const inPlaceCases: Case[] = [
  {
    name: 'a nullable column added at the end',
    from: { columns: [id, { name: 'a', type: 'text' }], rows: [[1, 'x']] },
    to: {
      columns: [id, { name: 'a', type: 'text' }, { name: 'b', type: 'jsonb' }],
      rows: [[2, 'y', { k: 1 }]],
    },
  },
  {
    name: 'a column dropped',
    from: { columns: [id, { name: 'a', type: 'text' }, { name: 'b', type: 'text' }], rows: [[1, 'x', 'z']] },
    to: { columns: [id, { name: 'b', type: 'text' }], rows: [[2, 'w']] },
  },
  {
    name: 'NOT NULL dropped',
    from: { columns: [id, { name: 'a', type: 'text', nullable: false }], rows: [[1, 'x']] },
    to: { columns: [id, { name: 'a', type: 'text' }], rows: [[2, null]] },
  },
  {
    name: 'varchar(8) widened to varchar(16), and varchar to text, with an index on each',
    from: {
      columns: [
        id,
        { name: 'a', type: 'varchar(8)', index: true },
        { name: 'b', type: 'varchar(4)', index: true },
      ],
      rows: [[1, 'abcdefgh', 'abcd']],
    },
    to: {
      columns: [
        id,
        { name: 'a', type: 'varchar(16)', index: true },
        { name: 'b', type: 'text', index: true },
      ],
      rows: [[2, 'abcdefghijklmnop', 'longer than four']],
    },
  },
  {
    name: 'numeric(8,2) widened to numeric(12,2)',
    from: { columns: [id, { name: 'n', type: 'numeric(8,2)' }], rows: [[1, '123456.78']] },
    to: { columns: [id, { name: 'n', type: 'numeric(12,2)' }], rows: [[2, '1234567890.12']] },
  },
  {
    name: 'indexes added (unique, btree, gin) and dropped',
    from: {
      columns: [id, { name: 'a', type: 'text', index: true }, { name: 'tags', type: 'text[]' }],
      rows: [[1, 'x', ['p']]],
    },
    to: {
      columns: [id, { name: 'a', type: 'text', unique: true }, { name: 'tags', type: 'text[]' }],
      indexes: [{ columns: ['tags'], using: 'gin' }, { columns: ['a', 'id'] }],
      rows: [[2, 'y', ['q']]],
    },
  },
  {
    name: 'a unique constraint dropped',
    from: { columns: [id, { name: 'a', type: 'text' }], rows: [[1, 'x']] },
    setup: 'ALTER TABLE %t ADD CONSTRAINT a_unique UNIQUE (a)',
    to: { columns: [id, { name: 'a', type: 'text' }], rows: [[2, 'x']] },
  },
];

describe('ingest(): in-place migrations keep the table (oid, relfilenode, views) and its rows', () => {
  for (const c of inPlaceCases) {
    it(c.name, () =>
      withSchema('inplace', async (f) => {
        const { before, after, report } = await migrateWithView(f, c);
        assert.deepEqual(after, before, 'same oid, relfilenode and view');
        assert.equal(report.migrations[0]?.path, 'in-place', JSON.stringify(report.migrations));
        const rows = await selectAll(f.observer, f.schema, 't');
        assert.equal(rows.length, c.from.rows.length + c.to.rows.length, JSON.stringify(rows));
        const wanted = defineTable({
          schema: f.schema,
          name: 'u',
          columns: c.to.columns,
          indexes: c.to.indexes ?? [],
        });
        await ingest(f.client, [wanted], batchesOf());
        const [shape, expected] = [
          await tableShape(f.observer, f.schema, 't'),
          await tableShape(f.observer, f.schema, 'u'),
        ];
        assert.deepEqual(shape, expected, 'the shape of a table created from the definition');
      }),
    );
  }

  it('keeps the values of the columns it does not touch, and of widened ones', () =>
    withSchema('inplace', async (f) => {
      await migrateWithView(f, inPlaceCases[3] as Case);
      assert.deepEqual(await selectAll(f.observer, f.schema, 't'), [
        { id: 1, a: 'abcdefgh', b: 'abcd' },
        { id: 2, a: 'abcdefghijklmnop', b: 'longer than four' },
      ]);
    }));

  it('says in the report which differences it found', () =>
    withSchema('inplace', async (f) => {
      const { report } = await migrateWithView(f, inPlaceCases[0] as Case);
      assert.deepEqual(report.migrations[0]?.differences, [
        'column "b" jsonb: in the definition, not in the table',
      ]);
      assert.equal(report.migratedTables, 1);
    }));
});

const rebuildCases: Case[] = [
  {
    name: 'integer to bigint (a rewrite)',
    from: { columns: [id, { name: 'b', type: 'integer' }], rows: [[1, 5]] },
    to: { columns: [id, { name: 'b', type: 'bigint' }], rows: [[2, 6]] },
  },
  {
    name: 'a column added in the middle',
    from: { columns: [id, { name: 'a', type: 'text' }], rows: [[1, 'x']] },
    to: { columns: [id, { name: 'b', type: 'text' }, { name: 'a', type: 'text' }], rows: [[2, 'z', 'y']] },
  },
  {
    name: 'a NOT NULL column added',
    from: { columns: [id], rows: [] },
    to: { columns: [id, { name: 'a', type: 'text', nullable: false }], rows: [[2, 'y']] },
  },
  {
    name: 'NOT NULL set (a scan)',
    from: { columns: [id, { name: 'a', type: 'text' }], rows: [[1, 'x']] },
    to: { columns: [id, { name: 'a', type: 'text', nullable: false }], rows: [[2, 'y']] },
  },
  {
    name: 'varchar narrowed',
    from: { columns: [id, { name: 'a', type: 'varchar(16)' }], rows: [[1, 'x']] },
    to: { columns: [id, { name: 'a', type: 'varchar(8)' }], rows: [[2, 'y']] },
  },
  {
    name: 'numeric scale changed',
    from: { columns: [id, { name: 'n', type: 'numeric(8,2)' }], rows: [[1, '1.5']] },
    to: { columns: [id, { name: 'n', type: 'numeric(12,4)' }], rows: [[2, '2.5']] },
  },
  {
    name: 'the primary key changed',
    from: { columns: [id, { name: 'k', type: 'text' }], rows: [[1, 'x']] },
    to: {
      columns: [
        { name: 'id', type: 'integer' },
        { name: 'k', type: 'text', primaryKey: true },
      ],
      rows: [[2, 'y']],
    },
  },
  {
    name: 'a widened column read by a view (ALTER would refuse)',
    from: { columns: [id, { name: 'a', type: 'varchar(8)' }], rows: [[1, 'x']] },
    setup: 'CREATE VIEW %s.va AS SELECT a FROM %t',
    to: { columns: [id, { name: 'a', type: 'varchar(16)' }], rows: [[2, 'y']] },
  },
];

describe('ingest(): changes PostgreSQL cannot make in place still rebuild the table', () => {
  for (const c of rebuildCases) {
    it(c.name, () =>
      withSchema('rebuild', async (f) => {
        const { before, after, report } = await migrateWithView(f, c);
        assert.notEqual(after.relfilenode, before.relfilenode);
        assert.equal(report.migrations[0]?.path, 'rebuild', JSON.stringify(report.migrations));
        assert.ok((report.migrations[0]?.rebuildReasons.length ?? 0) > 0);
        const rows = await selectAll(f.observer, f.schema, 't');
        assert.equal(rows.length, c.from.rows.length + c.to.rows.length);
      }),
    );
  }
});

describe('ingest(): an in-place ALTER never queues readers behind it', () => {
  it('retries while a long reader holds its lock, lets other readers through meanwhile, and commits the batch', () =>
    withSchema('inplace', async (f) => {
      const v1 = defineTable({ schema: f.schema, name: 't', columns: [id, { name: 'a', type: 'text' }] });
      await ingest(f.client, [v1], batchesOf(['1', null, rowsOf(v1, [1, 'x'])]));
      const longReader = await connect();
      const otherReader = await connect();
      try {
        await longReader.query(`BEGIN; SELECT count(*) FROM "${f.schema}".t`); // holds ACCESS SHARE
        const v2 = defineTable({
          schema: f.schema,
          name: 't',
          columns: [id, { name: 'a', type: 'text' }, { name: 'b', type: 'integer' }],
        });
        const reports: BatchReport[] = [];
        const ingesting = runIngest(
          f.client,
          [v2],
          batchesOf(['2', null, rowsOf(v2, [2, 'y', 3])]),
          {},
          undefined,
          (r) => reports.push(r),
        );
        // While the ALTER keeps trying, other readers are never stuck behind it for long.
        let longestReadMs = 0;
        const until = performance.now() + 1500;
        while (performance.now() < until) {
          const start = performance.now();
          await otherReader.query(`SELECT count(*) FROM "${f.schema}".t`);
          longestReadMs = Math.max(longestReadMs, performance.now() - start);
          await sleep(20);
        }
        await longReader.query('COMMIT');
        await ingesting;
        const migration = reports[0]?.migrations[0];
        assert.equal(migration?.path, 'in-place');
        assert.ok((migration?.lockAttempts ?? 0) > 1, `attempts: ${migration?.lockAttempts}`);
        assert.ok((migration?.lockWaitMs ?? 0) >= 1000, `waited ${migration?.lockWaitMs} ms`);
        assert.ok(longestReadMs < 1000, `a reader waited ${longestReadMs} ms`);
        assert.deepEqual(await selectAll(f.observer, f.schema, 't'), [
          { id: 1, a: 'x', b: null },
          { id: 2, a: 'y', b: 3 },
        ]);
      } finally {
        await Promise.allSettled([longReader.end(), otherReader.end()]);
      }
    }));
});

describe('ingest(): in-place migrations of names made of quotes, capitals and emoji', () => {
  it('adds and drops columns and indexes (index names truncated to 63 bytes, never mid-character)', () =>
    withSchema('inplace', async (f) => {
      const name = 'Tä "x" 🦄';
      const key = { name: 'Id "K" 🔑', type: 'integer', primaryKey: true } as const;
      const long = `Lông ${'ü'.repeat(25)} 🐣`; // 61 bytes: with the table name, an index name must be cut
      const v1 = defineTable({
        schema: f.schema,
        name,
        columns: [key, { name: "Näme 'q' 😀", type: 'varchar(4)', unique: true }],
      });
      await ingest(f.client, [v1], batchesOf(['1', null, rowsOf(v1, [1, 'ab'])]));
      const relation = `"${f.schema}"."${name.replaceAll('"', '""')}"`;
      const before = (
        await f.observer.query('SELECT relfilenode FROM pg_class WHERE oid = $1::regclass', [relation])
      ).rows;
      const v2 = defineTable({
        schema: f.schema,
        name,
        columns: [
          key,
          { name: "Näme 'q' 😀", type: 'varchar(40)' },
          { name: long, type: 'text', unique: true },
        ],
      });
      await ingest(f.client, [v2], batchesOf(['2', null, rowsOf(v2, [2, 'a longer name', 'x'])]));
      const after = (
        await f.observer.query('SELECT relfilenode FROM pg_class WHERE oid = $1::regclass', [relation])
      ).rows;
      assert.deepEqual(after, before);
      assert.deepEqual(await tableShape(f.observer, f.schema, name), {
        columns: [`${key.name} integer NOT NULL`, "Näme 'q' 😀 character varying(40)", `${long} text`],
        primaryKey: [key.name],
        indexes: [`unique btree(${long})`],
      });
      const { rows } = await f.observer.query(
        `SELECT ic.relname AS name FROM pg_index i JOIN pg_class ic ON ic.oid = i.indexrelid
          WHERE i.indrelid = $1::regclass AND NOT i.indisprimary`,
        [relation],
      );
      const indexName = rows[0]?.name as string;
      assert.ok(Buffer.byteLength(indexName) <= 63, indexName);
      assert.ok(indexName.endsWith('_idx') && !indexName.includes('\uFFFD'), indexName);
    }));
});

describe('ingest(): concurrent index builds that fail', () => {
  const a = { name: 'a', type: 'text' } as const;

  it('a unique index the rows violate fails the batch (23505, not retryable) and leaves no invalid index', () =>
    withSchema('inplace', async (f) => {
      const v1 = defineTable({ schema: f.schema, name: 't', columns: [id, a] });
      await ingest(f.client, [v1], batchesOf(['1', null, rowsOf(v1, [1, 'x'], [2, 'x'])]));
      const v2 = defineTable({ schema: f.schema, name: 't', columns: [id, { ...a, unique: true }] });
      const error = await rejection(() =>
        ingest(f.client, [v2], batchesOf(['2', null, rowsOf(v2, [3, 'y'])])),
      );
      assert.ok(error instanceof BatchError, String(error));
      assert.equal(error.context.sqlState, '23505');
      assert.equal(error.retryable, false);
      assert.deepEqual((await tableShape(f.observer, f.schema, 't')).indexes, []);
      const { rows } = await f.observer.query(
        `SELECT count(*)::int AS n FROM pg_index WHERE indrelid = '"${f.schema}".t'::regclass AND NOT indisvalid`,
      );
      assert.equal(rows[0].n, 0);
      assert.equal((await selectAll(f.observer, f.schema, 't')).length, 2);
    }));

  it('an invalid index left by someone else is dropped and the wanted one built, in place', () =>
    withSchema('inplace', async (f) => {
      const v1 = defineTable({ schema: f.schema, name: 't', columns: [id, a] });
      await ingest(f.client, [v1], batchesOf(['1', null, rowsOf(v1, [1, 'x'], [2, 'x'])]));
      await rejection(() =>
        f.observer.query(`CREATE UNIQUE INDEX CONCURRENTLY broken ON "${f.schema}".t (a)`),
      );
      const v2 = defineTable({ schema: f.schema, name: 't', columns: [id, { ...a, index: true }] });
      const before = await identity(f.observer, f.schema);
      await ingest(f.client, [v2], batchesOf(['2', null, rowsOf(v2, [3, 'y'])]));
      assert.deepEqual(await identity(f.observer, f.schema), before);
      const { rows } = await f.observer.query(
        `SELECT ic.relname AS name, i.indisvalid AS valid FROM pg_index i JOIN pg_class ic ON ic.oid = i.indexrelid
          WHERE i.indrelid = '"${f.schema}".t'::regclass AND NOT i.indisprimary`,
      );
      assert.deepEqual(rows, [{ name: 't_a_idx', valid: true }]);
    }));
});
