import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  JsonNumber,
  JsonObject,
  parseExactJson,
  parseJson,
  parseJsonKeepingNumbers,
  pythonFloat,
  pythonJsonDumps,
  stringifyJson,
  toPlainJson,
} from '../../src/ingest/exact-json.ts';

describe('exact JSON', () => {
  it('keeps key order as written, integer-like keys included', () => {
    const text = '{"b": 1, "10": 2, "a": 3, "2": 4}';
    const parsed = parseExactJson(text);
    assert.ok(parsed instanceof JsonObject);
    assert.deepEqual([...parsed.keys()], ['b', '10', 'a', '2']);
    assert.equal(pythonJsonDumps(parsed), text);
  });

  it('keeps a duplicate key in its first place with its last value, as Python does', () => {
    assert.equal(pythonJsonDumps(parseExactJson('{"a": 1, "b": 2, "a": 3}')), '{"a": 3, "b": 2}');
  });

  it('keeps every digit of every number', () => {
    const parsed = parseExactJson('[1234567890123456789, 1234567890.123456789, 1e400, 1.0]') as JsonNumber[];
    assert.deepEqual(
      parsed.map((n) => n.text),
      ['1234567890123456789', '1234567890.123456789', '1e400', '1.0'],
    );
    assert.equal(stringifyJson(parsed), '[1234567890123456789,1234567890.123456789,1e400,1.0]');
  });

  it('reads integers beyond 2^53 as bigints and others as numbers in ordinary JavaScript', () => {
    assert.deepEqual(parseJson('{"a": 9007199254740993, "b": 9007199254740991, "c": 1.5, "d": -0}'), {
      a: 9007199254740993n,
      b: 9007199254740991,
      c: 1.5,
      d: 0,
    });
    assert.deepEqual(toPlainJson(parseExactJson('{"10": [1.0, 12345678901234567890]}')), {
      10: [1, 12345678901234567890n],
    });
  });

  it('keeps a "__proto__" key as a key, not as the prototype', () => {
    const plain = parseJson('{"__proto__": {"x": 1}}') as Record<string, unknown>;
    assert.equal(Object.getPrototypeOf(plain), Object.prototype);
    assert.deepEqual(Object.keys(plain), ['__proto__']);
    assert.equal(stringifyJson(plain), '{"__proto__":{"x":1}}');
    assert.equal(stringifyJson(toPlainJson(parseExactJson('{"__proto__": 1}'))), '{"__proto__":1}');
  });

  it('formats floats as Python repr does', () => {
    const cases: [number, string][] = [
      [1, '1.0'],
      [-0, '-0.0'],
      [0, '0.0'],
      [1e16, '1e+16'],
      [1e15, '1000000000000000.0'],
      [1e21, '1e+21'],
      [1e-7, '1e-07'],
      [2.5e-5, '2.5e-05'],
      [0.0001, '0.0001'],
      [0.1, '0.1'],
      [123.456, '123.456'],
      [-1.5e300, '-1.5e+300'],
      [5e-324, '5e-324'],
      [1.7976931348623157e308, '1.7976931348623157e+308'],
      [Number.NaN, 'NaN'],
      [Number.POSITIVE_INFINITY, 'Infinity'],
    ];
    for (const [value, text] of cases) assert.equal(pythonFloat(value), text, String(value));
  });

  it('writes JavaScript numbers as integers when safe, else as floats, so they read back the same', () => {
    assert.equal(
      pythonJsonDumps([1, -7, 1.5, 1e21, -0, 2 ** 53 + 2]),
      '[1, -7, 1.5, 1e+21, -0.0, 9007199254740994.0]',
    );
    for (const n of [1e21, -0, 2 ** 53 + 2, 0.1])
      assert.ok(Object.is(parseJson(pythonJsonDumps(n)), n), String(n));
  });

  it("reads Python's NaN and Infinity in a comment only when asked", () => {
    assert.equal(
      pythonJsonDumps(parseExactJson('[NaN, Infinity, -Infinity, 1e400]', { pythonLiterals: true })),
      '[NaN, Infinity, -Infinity, Infinity]',
    );
    assert.throws(() => parseExactJson('[NaN]'), SyntaxError);
    assert.throws(() => stringifyJson(new JsonNumber('NaN')), TypeError);
  });

  it('refuses what is not JSON, naming the position', () => {
    for (const text of ['', '{', '[1,]', '{"a" 1}', '01', '"\n"', '"\\x"', '[1] 2', 'nul', '{"a":1,}', '-']) {
      assert.throws(() => parseExactJson(text), SyntaxError, JSON.stringify(text));
      assert.throws(() => JSON.parse(text), SyntaxError, `JSON.parse agrees: ${JSON.stringify(text)}`);
    }
    assert.throws(() => parseExactJson('[1,]'), /position 3/);
  });

  it('parses what JSON.parse parses, to the same values', () => {
    const text =
      ' { "s": "a\\"b\\\\c\\/d\\b\\f\\n\\r\\t\\u00e9\\ud83d\\udc18", "n": [0, -1, 2.5, 3e2, 4E-1], "t": true, "f": false, "z": null, "o": {}, "a": [] } ';
    assert.deepEqual(parseJson(text), JSON.parse(text));
  });

  it('parses a value nested 100,000 deep without overflowing the stack', () => {
    const depth = 100_000;
    const parsed = parseJson(`${'['.repeat(depth)}${']'.repeat(depth)}`);
    assert.ok(Array.isArray(parsed));
  });

  it('keeps numbers as JsonNumber in plain objects for readers that decide per column', () => {
    const parsed = parseJsonKeepingNumbers('{"x": 1.10, "y": [2]}') as { x: JsonNumber; y: JsonNumber[] };
    assert.equal(parsed.x.text, '1.10');
    assert.equal(parsed.y[0]?.text, '2');
    assert.throws(() => JSON.stringify(parsed), /stringifyJson/);
  });
});
