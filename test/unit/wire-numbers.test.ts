import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { JsonNumber, parseJsonKeepingNumbers } from '../../src/ingest/exact-json.ts';
import { exactWireValue, WireNumberError } from '../../src/queue/wire-numbers.ts';

const n = (text: string) => new JsonNumber(text);

describe('JSON numbers as wire values, by column type', () => {
  const kept: [string, string, unknown][] = [
    ['integer', '42', 42],
    ['integer', '-0', 0],
    ['integer', '1e3', 1000],
    ['integer', '2.0', 2],
    ['bigint', '1234567890123456789', '1234567890123456789'],
    ['bigint', '12345678901234567890e-1', '1234567890123456789'],
    ['bigint', '-9223372036854775808', '-9223372036854775808'],
    ['oid', '4294967295', 4294967295],
    ['numeric', '1234567890.123456789', '1234567890.123456789'],
    ['numeric', '1.10', '1.10'],
    ['numeric', '1e400', '1e400'],
    ['numeric(12,2)', '19.99', '19.99'],
    ['money', '1.5e3', '1500'],
    ['money', '12.34', '12.34'],
    ['double precision', '0.1', '0.1'],
    ['double precision', '-0.0', '-0.0'],
    ['double precision', '5e-324', '5e-324'],
    ['real', '3.4e38', '3.4e38'],
    ['text', '1.0', '1.0'],
    ['date', '20240101', '20240101'],
    ['boolean', '1', 1],
    ['bytea', '1234', 1234],
  ];
  for (const [type, text, wire] of kept) {
    it(`writes ${text} into ${type} as ${JSON.stringify(wire)}`, () => {
      const base = type.replace(/\(.*\)$/, '');
      assert.deepEqual(exactWireValue(n(text), base, 0), wire);
    });
  }

  const refused: [string, string, RegExp][] = [
    ['integer', '1.5', /not a whole number/],
    ['integer', '2147483648', /out of range for integer \(/],
    ['smallint', '-32769', /out of range for smallint \(/],
    ['bigint', '9223372036854775808', /out of range for bigint \(/],
    ['bigint', '1e1000000000', /out of range/],
    ['double precision', '1e400', /out of range for type double precision/],
    ['double precision', '1e-400', /out of range/],
    ['real', '1e39', /out of range for type real/],
    ['real', '1e-46', /out of range for type real/],
    ['numeric', '1e131073', /beyond the range of type numeric/],
    ['numeric', '1e-16384', /beyond the range of type numeric/],
    ['money', '1e18', /out of range for type money/],
  ];
  for (const [type, text, message] of refused) {
    it(`refuses ${text} for ${type} rather than change it`, () => {
      assert.throws(
        () => exactWireValue(n(text), type, 0),
        (e: unknown) => e instanceof WireNumberError && message.test(e.message),
      );
    });
  }

  it('converts the items of array columns, and leaves json/jsonb values as read', () => {
    assert.deepEqual(exactWireValue(parseJsonKeepingNumbers('[[1.10, null], [2e0]]'), 'numeric', 2), [
      ['1.10', null],
      ['2e0'],
    ]);
    const doc = parseJsonKeepingNumbers('{"x": 1234567890.123456789}');
    assert.equal(exactWireValue(doc, 'jsonb', 0), doc);
    assert.equal(
      exactWireValue('text', 'numeric', 0),
      'text',
      'values that are not numbers are left for the contract',
    );
  });
});
