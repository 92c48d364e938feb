import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { PgBulkIngestError } from '../../src/errors.ts';
import { JsonNumber, parseExactJson } from '../../src/ingest/exact-json.ts';
import { assertStorableJson, MAX_JSON_DEPTH } from '../../src/ingest/storable-json.ts';

function nested(depth: number): unknown {
  let value: unknown = 1;
  for (let i = 0; i < depth; i++) value = { a: [value] }.a;
  return value;
}

const refusedAt = (path: string, message: RegExp) => (e: unknown) =>
  e instanceof PgBulkIngestError &&
  e.code === 'INVALID_JSON_VALUE' &&
  e.context.path === path &&
  message.test(e.message) &&
  e.message.startsWith('Batch 1: the high watermark cannot be stored as JSON');

describe('values a high watermark or metadata may hold', () => {
  it('accepts JSON, bigints, Dates and exact values', () => {
    for (const value of [
      null,
      true,
      0,
      -1.5,
      'text é 🐘',
      12345678901234567890n,
      new Date(0),
      [1, { a: [null] }],
      Object.create(null),
      parseExactJson('{"10": 1.0}'),
      new JsonNumber('1e400'),
      nested(MAX_JSON_DEPTH),
    ])
      assertStorableJson(value, 'Batch 1: the high watermark');
  });

  const refused: [string, unknown, string, RegExp][] = [
    ['undefined', undefined, '$', /undefined/],
    ['undefined in an object', { a: { b: undefined } }, '$.a.b', /undefined/],
    ['a hole in an array', new Array(2), '$[0]', /undefined/],
    ['NaN', { n: Number.NaN }, '$.n', /NaN/],
    ['Infinity', [Number.POSITIVE_INFINITY], '$[0]', /Infinity/],
    ['a function', { f: () => 1 }, '$.f', /function/],
    ['a symbol', [Symbol('s')], '$[0]', /symbol/],
    ['a Map', { m: new Map() }, '$.m', /Map/],
    ['a Set', new Set([1]), '$', /Set/],
    ['a Buffer', Buffer.from('x'), '$', /Buffer/],
    ['a class instance', new (class Cursor {})(), '$', /Cursor/],
    ['an invalid Date', new Date(Number.NaN), '$', /invalid Date/],
    ['NUL in a string', { s: 'a\u0000b' }, '$.s', /\\u0000/],
    ['NUL in a key', { 'a\u0000': 1 }, '$.a\u0000', /key.*\\u0000/],
    ['a lone surrogate', ['x\ud800y'], '$[0]', /lone surrogate/],
    ['a lone low surrogate', 'x\udc00', '$', /lone surrogate/],
    ['Python NaN', new JsonNumber('NaN'), '$', /NaN/],
  ];
  for (const [name, value, path, message] of refused) {
    it(`refuses ${name}, naming where`, () => {
      assert.throws(() => assertStorableJson(value, 'Batch 1: the high watermark'), refusedAt(path, message));
    });
  }

  it(`refuses nesting deeper than ${MAX_JSON_DEPTH} levels, even 5,000 deep, without a stack overflow`, () => {
    for (const depth of [MAX_JSON_DEPTH + 1, 2_500, 5_000, 200_000]) {
      assert.throws(
        () => assertStorableJson(nested(depth), 'Batch 1: the high watermark'),
        (e: unknown) => e instanceof PgBulkIngestError && /more than 100 levels deep/.test(e.message),
        String(depth),
      );
    }
  });

  it('refuses a value that contains itself', () => {
    const cyclic: Record<string, unknown> = {};
    cyclic.self = cyclic;
    assert.throws(() => assertStorableJson(cyclic, 'Batch 1: the high watermark'), /refers to itself/);
  });
});
