import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { encoderFor, escapeCopyText } from '../../src/ingest/copy-encoding.ts';
import { defineTable } from '../../src/ingest/table-definition.ts';

function encoder(type: string) {
  const table = defineTable({ schema: 's', name: 't', columns: [{ name: 'c', type }] });
  return encoderFor(table.columns[0] as (typeof table.columns)[0]);
}

describe('COPY text encoding', () => {
  it('escapes backslash, tab, newline and carriage return, and nothing else', () => {
    assert.equal(escapeCopyText('a\\b\tc\nd\re'), 'a\\\\b\\tc\\nd\\re');
    assert.equal(escapeCopyText('plain "quoted" ünïcødé 🐘'), 'plain "quoted" ünïcødé 🐘');
  });

  it('writes null and undefined as \\N', () => {
    assert.equal(encoder('text')(null), '\\N');
    assert.equal(encoder('integer')(undefined), '\\N');
  });

  it('writes numbers, bigints, booleans and Dates', () => {
    assert.equal(encoder('integer')(42), '42');
    assert.equal(encoder('bigint')(2n ** 63n - 1n), '9223372036854775807');
    assert.equal(encoder('boolean')(true), 't');
    assert.equal(encoder('boolean')(false), 'f');
    assert.equal(
      encoder('timestamptz')(new Date(Date.UTC(2020, 0, 2, 3, 4, 5, 6))),
      '2020-01-02T03:04:05.006Z',
    );
  });

  it('writes bytea as escaped hex', () => {
    assert.equal(encoder('bytea')(Buffer.from([0, 1, 254, 255])), '\\\\x0001feff');
    assert.equal(encoder('bytea')(new Uint8Array([16])), '\\\\x10');
  });

  it('JSON-encodes any value for json and jsonb columns', () => {
    assert.equal(encoder('jsonb')({ a: [1, 'x\ty'] }), '{"a":[1,"x\\\\ty"]}');
    assert.equal(encoder('json')('text'), '"text"');
    assert.equal(encoder('jsonb')({ big: 10n }), '{"big":"10"}');
  });

  it('writes arrays as quoted array literals, NULL items and nesting included', () => {
    assert.equal(encoder('text[]')(['a', null, 'b"c', 'd\\e']), '{"a",NULL,"b\\\\"c","d\\\\\\\\e"}');
    assert.equal(
      encoder('integer[][]')([
        [1, 2],
        [3, null],
      ]),
      '{{"1","2"},{"3",NULL}}',
    );
  });

  it('refuses objects for non-json columns and non-arrays for array columns, saying why', () => {
    assert.throws(() => encoder('text')({ a: 1 }), /only json\/jsonb columns take objects/);
    assert.throws(() => encoder('text[]')('a'), /expected an array for type text\[\]/);
    assert.throws(() => encoder('bytea')(12), /expected a Buffer or Uint8Array/);
    assert.throws(() => encoder('date')(new Date(Number.NaN)), /invalid Date/);
  });
});
