/**
 * The value rules (src/ingest/value-rules.ts and text-rules.ts) as the wire validation applies
 * them: a test per rule, over the cases of test/helpers/value-cases.ts (which an integration test
 * checks against PostgreSQL itself), plus the rules for JavaScript values that only JSON concerns.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { type ParsedType, parsePgType } from '../../src/ingest/pg-type.ts';
import { jsonTextMayHoldBadString, jsonValueProblem, stringProblem } from '../../src/ingest/text-rules.ts';
import { integerDigitsAfterRounding } from '../../src/ingest/value-rules.ts';
import { wireValueProblem } from '../../src/queue/batch-contract.ts';
import { VALUE_CASES } from '../helpers/value-cases.ts';

function problem(type: string, value: unknown): string | undefined {
  return wireValueProblem(parsePgType(type) as ParsedType, value, true);
}

describe('value rules: refused at the door what PostgreSQL would refuse', () => {
  for (const [rule, cases] of Object.entries(VALUE_CASES)) {
    it(rule, () => {
      for (const [type, value, expect] of cases) {
        const found = problem(type, value);
        const shown = `${type} ${JSON.stringify(value)?.slice(0, 60)}`;
        if (expect === 'ok') assert.equal(found, undefined, `${shown} should be taken`);
        else assert.ok(found, `${shown} should be refused`);
      }
    });
  }

  it('says why, naming the value', () => {
    assert.match(
      problem('date', '2024-02-30') ?? '',
      /has day 30, but that month has 29 days, got "2024-02-30"/,
    );
    assert.match(
      problem('timestamptz', 'yesterday-ish') ?? '',
      /is not an ISO 8601 timestamp .*"yesterday-ish"/,
    );
    assert.match(problem('timestamptz', '2024-01-01T25:61:00Z') ?? '', /time of day out of range/);
    assert.match(
      problem('smallint', 40000) ?? '',
      /out of range for smallint \(-32768 to 32767\), got 40000/,
    );
    assert.match(
      problem('numeric(12,2)', '12345678901') ?? '',
      /has 11 digits before the decimal point; numeric\(12,2\) holds at most 10/,
    );
    assert.match(problem('varchar(3)', 'abcd') ?? '', /is longer than 3 characters \(4\)/);
    assert.match(problem('uuid', 'nope') ?? '', /is not a uuid, got "nope"/);
    assert.match(problem('integer', 'NaN') ?? '', /integer cannot hold NaN or Infinity/);
    assert.match(problem('numeric(5,1)', 'Infinity') ?? '', /numeric\(5,1\) cannot hold Infinity/);
    assert.match(problem('real', '1e39') ?? '', /out of range for real \(too large\)/);
    assert.match(problem('text', 'ab\u0000') ?? '', /holds a NUL character \(\\u0000\) at character 3/);
    assert.match(
      problem('text', 'a\ud800') ?? '',
      /holds a lone UTF-16 surrogate \(\\ud800\) at character 2/,
    );
    assert.match(problem('jsonb', { a: [1, { b: '\u0000' }] }) ?? '', /NUL character .*\(at \.a\[1\]\.b\)/);
  });

  it('counts digits before the point as PostgreSQL rounds them', () => {
    const cases: [string, number, number][] = [
      ['0', 2, 0],
      ['0.00', 2, 0],
      ['-0.5', 0, 1], // rounds half away from zero to -1
      ['0.49', 0, 0],
      ['99.995', 2, 3],
      ['99.994', 2, 2],
      ['1e5', 0, 6],
      ['1.5e-3', 2, 0],
      ['0.0099', 2, 0],
      ['0.0095', 2, 0],
      ['9.5e-1', 0, 1],
      ['12345.678e-2', 1, 3],
      ['000123', 0, 3],
    ];
    for (const [text, scale, digits] of cases)
      assert.equal(integerDigitsAfterRounding(text, scale), digits, `${text} to ${scale} places`);
  });

  it('finds NUL and lone surrogates, not surrogate pairs', () => {
    assert.equal(stringProblem('plain ünïcødé 😀'), undefined);
    assert.ok(stringProblem('\u0000'));
    assert.ok(stringProblem('\ude00\ud83d')); // a pair in the wrong order: two lone halves
  });

  it('finds in a row of JSON text every string that may hold NUL or a lone surrogate', () => {
    for (const bad of ['\u0000', '\ud800', '\udfff'])
      assert.ok(jsonTextMayHoldBadString(JSON.stringify(['s.t', ['x', { [bad]: 1 }]])));
    assert.ok(jsonTextMayHoldBadString(JSON.stringify(['s.t', [bad3()]])));
    assert.equal(
      jsonTextMayHoldBadString(JSON.stringify(['s.t', ['tab\t', 'é 😀', '"q"', 'back\\slash']])),
      false,
    );
  });

  it('refuses JavaScript values that JSON cannot hold, as JSON.stringify would change them', () => {
    const refused: [unknown, RegExp][] = [
      [Number.NaN, /holds NaN, which JSON cannot hold/],
      [{ a: Number.POSITIVE_INFINITY }, /holds Infinity.*\(at \.a\)/],
      [[1, [2, Number.NEGATIVE_INFINITY]], /holds -Infinity.*\(at \[1\]\[1\]\)/],
      [{ file: Buffer.from('hi') }, /holds a Buffer: JSON has no bytes.*\(at \.file\)/],
      [new Uint8Array([1]), /holds a Buffer/],
      [{ m: new Map([['a', 1]]) }, /holds a Map, which JSON.stringify writes as \{\}/],
      [new Set([1]), /holds a Set/],
      [{ at: new Date(Number.NaN) }, /holds an invalid Date/],
    ];
    for (const [value, message] of refused) assert.match(jsonValueProblem(value, false) ?? '', message);
    const taken: unknown[] = [
      { a: 1, b: 'x', c: [true, null], d: new Date(0), e: 10n, f: undefined },
      { toJSON: () => 'its own form' },
      Object.create(null),
      -0,
      Number.MAX_VALUE,
    ];
    for (const value of taken) assert.equal(jsonValueProblem(value, false), undefined);
    let deep: unknown = 1;
    for (let i = 0; i < 100_000; i++) deep = [deep];
    assert.match(jsonValueProblem(deep, false) ?? '', /nested too deeply/);
  });
});

function bad3(): string {
  return 'ok \udbff'; // the last high surrogate, alone
}
