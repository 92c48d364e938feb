/**
 * The pure parts of migration planning: which type changes PostgreSQL makes without a rewrite,
 * which type ADDITIVE widens to, how differences are found and which force a rebuild.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { TableShape } from '../../src/ingest/live-table.ts';
import { describeDifference, diffShapes, rebuildReason } from '../../src/ingest/migrate/table-diff.ts';
import { changesWithoutRewrite, widerType } from '../../src/ingest/migrate/type-change.ts';

describe('changesWithoutRewrite', () => {
  const inPlace: [string, string][] = [
    ['character varying(8)', 'character varying(16)'],
    ['character varying(8)', 'character varying(8)'],
    ['character varying(8)', 'character varying'],
    ['character varying(8)', 'text'],
    ['character varying', 'text'],
    ['numeric(8,2)', 'numeric(12,2)'],
    ['numeric(8,2)', 'numeric'],
  ];
  const rewrites: [string, string][] = [
    ['character varying(16)', 'character varying(8)'],
    ['text', 'character varying(8)'],
    ['character varying', 'character varying(8)'],
    ['numeric(8,2)', 'numeric(12,4)'],
    ['numeric(12,2)', 'numeric(8,2)'],
    ['numeric', 'numeric(12,2)'],
    ['integer', 'bigint'],
    ['character varying(8)[]', 'character varying(16)[]'],
    ['character(8)', 'character(16)'],
  ];
  for (const [from, to] of inPlace)
    it(`${from} → ${to}: in place`, () => assert.equal(changesWithoutRewrite(from, to), true));
  for (const [from, to] of rewrites)
    it(`${from} → ${to}: rewrite`, () => assert.equal(changesWithoutRewrite(from, to), false));
});

describe('widerType', () => {
  it('takes the type that holds both, either way round', () => {
    assert.equal(widerType('character varying(8)', 'character varying(32)'), 'character varying(32)');
    assert.equal(widerType('text', 'character varying(32)'), 'text');
    assert.equal(widerType('bigint', 'integer'), 'bigint');
    assert.equal(widerType('smallint', 'integer'), 'integer');
    assert.equal(widerType('real', 'double precision'), 'double precision');
    assert.equal(widerType('numeric(8,2)', 'numeric(10,4)'), 'numeric(10,4)');
    assert.equal(widerType('numeric(12,2)', 'numeric(6,4)'), 'numeric(14,4)');
  });

  it('has none for types neither of which holds the other', () => {
    assert.equal(widerType('text', 'integer'), undefined);
    assert.equal(widerType('timestamp without time zone', 'timestamp with time zone'), undefined);
  });
});

const shape = (columns: [string, string, boolean?][], indexes: string[] = []): TableShape => ({
  columns: columns.map(([name, type, notNull]) => ({ name, type, notNull: notNull ?? false })),
  primaryKey: ['id'],
  indexes,
  indexDetails: indexes.map((key, i) => ({
    key,
    name: `i${i}`,
    constraint: null,
    referenced: false,
    definition: null,
  })),
});

describe('diffShapes', () => {
  it('tells a column added at the end from one added in the middle', () => {
    const live = shape([
      ['id', 'integer', true],
      ['a', 'text'],
    ]);
    const end = diffShapes(
      live,
      shape([
        ['id', 'integer', true],
        ['a', 'text'],
        ['b', 'text'],
        ['c', 'text'],
      ]),
    );
    assert.deepEqual(
      end.map((d) => rebuildReason(d, new Set())),
      [null, null],
    );
    const middle = diffShapes(
      live,
      shape([
        ['id', 'integer', true],
        ['b', 'text'],
        ['a', 'text'],
      ]),
    );
    assert.deepEqual(middle.map(describeDifference), [
      'column "b" text: in the definition (not at the end), not in the table',
    ]);
    assert.equal(rebuildReason(middle[0] as never, new Set()), 'a column added before existing ones');
  });

  it('sees a reorder of kept columns, not a drop and an add', () => {
    const d = diffShapes(
      shape([
        ['id', 'integer', true],
        ['a', 'text'],
        ['b', 'text'],
      ]),
      shape([
        ['id', 'integer', true],
        ['b', 'text'],
        ['a', 'text'],
      ]),
    );
    assert.deepEqual(
      d.map((x) => x.kind),
      ['column-order'],
    );
  });

  it('drops a column and adds one after the rest in place, but not a dropped column something depends on', () => {
    const d = diffShapes(
      shape([
        ['id', 'integer', true],
        ['a', 'text'],
        ['b', 'text'],
      ]),
      shape([
        ['id', 'integer', true],
        ['b', 'text'],
        ['c', 'text'],
      ]),
    );
    assert.deepEqual(
      d.map((x) => x.kind),
      ['column-dropped', 'column-added'],
    );
    assert.deepEqual(
      d.map((x) => rebuildReason(x, new Set())),
      [null, null],
    );
    assert.match(rebuildReason(d[0] as never, new Set(['a'])) ?? '', /dependent objects/);
  });

  it('compares indexes as multisets', () => {
    const live = shape([['id', 'integer', true]], ['plain|btree|"id"', 'plain|btree|"id"']);
    const d = diffShapes(live, { ...shape([['id', 'integer', true]]), indexes: ['plain|btree|"id"'] });
    assert.deepEqual(d.map(describeDifference), [
      'index "i1" btree ("id"): in the table, not in the definition',
    ]);
  });

  it('rebuilds for a new NOT NULL, for SET NOT NULL and for a rewriting type change', () => {
    const live = shape([
      ['id', 'integer', true],
      ['a', 'text'],
      ['n', 'integer'],
    ]);
    const d = diffShapes(
      live,
      shape([
        ['id', 'integer', true],
        ['a', 'text', true],
        ['n', 'bigint'],
        ['z', 'text', true],
      ]),
    );
    assert.deepEqual(
      d.map((x) => rebuildReason(x, new Set())),
      [
        'SET NOT NULL scans the table',
        'integer → bigint rewrites the table',
        'a NOT NULL column added (existing rows have no value)',
      ],
    );
  });
});
