/**
 * The part fast path (wire-part-bytes.ts, WirePartReader.copyText) against the row path
 * (WirePartReader.rows + TableWriter.encode), on seeded random input: it must give exactly the
 * row path's bytes, or give up (undefined). Both on parts the Producer writes (WireRowWriter)
 * and on parts it does not (JSON.stringify never writes them, but Redis holds whatever was put
 * there): a part the row path refuses must not go into COPY, where COPY's own escapes
 * (`\N`, `\.`, `\x41`, octal) would silently change or end the data.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { defineTable, type IngestTable } from '../../src/ingest/table-definition.ts';
import { TableWriter } from '../../src/ingest/table-writer.ts';
import { mulberry32 } from '../../src/ops/demo/deterministic-random.ts';
import { WirePartReader } from '../../src/queue/wire-part.ts';
import { WireRowWriter } from '../../src/queue/wire-row-writer.ts';

const table = defineTable({
  schema: 's',
  name: 't',
  columns: [
    { name: 'i', type: 'integer' },
    { name: 'big', type: 'bigint' },
    { name: 'num', type: 'numeric' },
    { name: 'dbl', type: 'double precision' },
    { name: 'flag', type: 'boolean' },
    { name: 'at', type: 'timestamptz' },
    { name: 'day', type: 'date' },
    { name: 'id', type: 'uuid' },
    { name: 'doc', type: 'jsonb' },
    { name: 'raw', type: 'json' },
    { name: 'vc', type: 'varchar(40)' },
    { name: 'txt', type: 'text' }, // last: a COPY line ends with it
  ],
});

/** The row path: what the worker COPYs when the fast path gives up; or the error it throws. */
function rowPath(t: IngestTable, part: Buffer, firstOrdinal?: number): string {
  const writer = new TableWriter(t, 'target', firstOrdinal === undefined ? undefined : '_ordinal');
  if (firstOrdinal !== undefined) writer.rowCount = firstOrdinal - 1;
  let out = '';
  try {
    for (const [, values] of new WirePartReader([t], 'Batch 1').rows(part.toString())) {
      out += writer.encode(values, 1);
    }
  } catch (error) {
    return `throws: ${(error as Error).message}`;
  }
  return out;
}

function fastPath(t: IngestTable, part: Buffer, firstOrdinal?: number): string | undefined {
  const text = new WirePartReader([t], 'Batch 1').copyText(part, t, firstOrdinal);
  return text === undefined ? undefined : Buffer.from(text.bytes).toString('latin1');
}

/** A short form of a long text for a failure message. */
const short = (text: string) => JSON.stringify(text.length > 240 ? `${text.slice(0, 240)}...` : text);

/** Byte for byte (latin1: each byte one character, so that invalid UTF-8 shows too). */
const latin1 = (text: string) => Buffer.from(text).toString('latin1');

const CHARS = [
  'a',
  'Z',
  '0',
  ' ',
  '\t',
  '\n',
  '\r',
  '\b',
  '\f',
  '\\',
  '"',
  '/',
  '[',
  ']',
  '{',
  '}',
  ',',
  ':',
  'é',
  '東',
  '🐘',
  '\u2028',
  '\ufeff',
  'N',
  '.',
  'u',
  '\\N',
  '\\.',
  '\\u0041',
  'null',
  'true',
];

function generator(rnd: () => number) {
  const pick = <T>(a: readonly T[]): T => a[Math.floor(rnd() * a.length)] as T;
  const str = () => Array.from({ length: Math.floor(rnd() * 8) }, () => pick(CHARS)).join('');
  const json = (depth: number): unknown => {
    const r = rnd();
    if (depth > 3 || r < 0.4) return pick([null, true, false, 0, -0, 1e21, 5e-324, -1.5, str(), '']);
    if (r < 0.7) return Array.from({ length: Math.floor(rnd() * 4) }, () => json(depth + 1));
    return Object.fromEntries(Array.from({ length: Math.floor(rnd() * 4) }, () => [str(), json(depth + 1)]));
  };
  const deep = (n: number) => {
    let v: unknown = 1;
    for (let k = 0; k < n; k++) v = rnd() < 0.5 ? [v] : { k: v };
    return v;
  };
  const values = (): unknown[] => [
    pick([0, -0, 1, -2147483648, 2147483647, null, '12']),
    pick([0, 9007199254740991, 2n ** 63n - 1n, '-9223372036854775808', null]),
    pick([0, 1e21, 5e-324, 1e-7, '123456789012345678901234567890.123456789', 'NaN', null]),
    pick([0, -0, 1e21, 5e-324, 1.7976931348623157e308, 'Infinity', '-Infinity', 'NaN', 0.1, null]),
    pick([true, false, null]),
    pick([new Date(Date.UTC(2020, 1, 3, 4, 5, 6, 7)), '2020-01-02T03:04:05Z', null]),
    pick(['2020-01-02', new Date(Date.UTC(1999, 11, 31)), null]),
    pick(['123e4567-e89b-12d3-a456-426614174000', null]),
    rnd() < 0.02 ? deep(300) : json(0),
    rnd() < 0.02 ? deep(5000) : json(0),
    pick([str(), '', null]),
    pick([str(), str(), '', '\\N', '\\.', null]),
  ];
  return { pick, values };
}

/** Parts as the Producer writes them: WireRowWriter's rows in `[row,row,...]`, as UTF-8. */
function producerParts(seed: number, count: number): Buffer[] {
  const rnd = mulberry32(seed);
  const { values } = generator(rnd);
  const writer = new WireRowWriter(table);
  return Array.from({ length: count }, () => {
    const rows: string[] = [];
    for (let r = 0; r < Math.floor(rnd() * 6); r++) {
      try {
        rows.push(writer.write(values(), 'Batch 1', r + 1));
      } catch {
        // a value the Producer refuses: not in any part
      }
    }
    return Buffer.from(`[${rows.join(',')}]`);
  });
}

describe('wire part bytes: seeded fuzz against the row path', () => {
  it('gives the row path bytes, exactly, for every part the Producer writes (with and without ordinals)', () => {
    const failures: string[] = [];
    let fast = 0;
    for (const [n, part] of producerParts(20261129, 1500).entries()) {
      const ordinal = n % 2 === 0 ? undefined : 1 + n * 1000;
      const got = fastPath(table, part, ordinal);
      if (got === undefined) continue;
      fast += 1;
      const want = latin1(rowPath(table, part, ordinal));
      if (got !== want && failures.length < 3)
        failures.push(`part ${short(part.toString())}\n fast ${short(got)}\n rows ${short(want)}`);
    }
    assert.ok(fast > 500, `most parts take the fast path (${fast})`);
    assert.deepEqual(failures, []);
  });

  it('writes a backspace and a form feed in a text column as the row path does', () => {
    // JSON.stringify writes them as \b and \f; the row path decodes them (raw 0x08, 0x0c bytes),
    // the fast path keeps the two-character escapes. PostgreSQL reads both as the same text, but
    // the bytes differ from the row path's, which the fast path promises.
    const writer = new WireRowWriter(table);
    const values = [1, 1, 1, 1, true, null, null, null, null, null, 'back\bspace', 'form\ffeed'];
    const part = Buffer.from(`[${writer.write(values, 'Batch 1', 1)}]`);
    assert.equal(fastPath(table, part) ?? latin1(rowPath(table, part)), latin1(rowPath(table, part)));
  });

  it('never takes a part the row path refuses, nor changes what a refused value would be (seeded mutations)', () => {
    const rnd = mulberry32(7);
    const { pick } = generator(rnd);
    const parts = producerParts(11, 400)
      .map((p) => p.toString())
      .filter((p) => p.length > 2 && p.length < 3000);
    const TOKENS = [
      '\\',
      '"',
      ',',
      '[',
      ']',
      '{',
      '}',
      '.',
      'N',
      'x',
      '0',
      '1',
      '+',
      '-',
      'e',
      'E',
      '\\.',
      '\\N',
      '\\x41',
      '\\101',
      '\\v',
    ];
    const failures = new Map<string, string>();
    for (let n = 0; n < 20_000 && failures.size < 5; n++) {
      let text = pick(parts);
      const at = Math.floor(rnd() * text.length);
      const op = rnd();
      if (op < 0.5) text = text.slice(0, at) + pick(TOKENS) + text.slice(at);
      else if (op < 0.75) text = text.slice(0, at) + text.slice(at + 1);
      else text = text.slice(0, at) + pick(TOKENS) + text.slice(at + 1);
      const part = Buffer.from(text);
      const got = fastPath(table, part);
      if (got === undefined) continue;
      const want = latin1(rowPath(table, part));
      if (got !== want) {
        const kind = want.startsWith('throws') ? 'row path refuses it' : 'bytes differ';
        const isJson = (() => {
          try {
            JSON.parse(text);
            return 'valid JSON';
          } catch {
            return 'not JSON';
          }
        })();
        if (!failures.has(`${kind}, ${isJson}`))
          failures.set(`${kind}, ${isJson}`, `${short(text)}\n fast ${short(got)}\n rows ${short(want)}`);
      }
    }
    assert.deepEqual(Object.fromEntries(failures), {});
  });
});

describe('wire part bytes: hand-made parts that are not JSON.stringify output', () => {
  const t = defineTable({
    schema: 's',
    name: 't',
    columns: [
      { name: 'id', type: 'integer' },
      { name: 'doc', type: 'jsonb' },
      { name: 'v', type: 'text' },
    ],
  });
  const partWith = (id: string, doc: string, v: string) =>
    Buffer.from(`[["s.t",[${id},${doc},${v}]],["s.t",[2,null,"next"]]]`);

  // Each is refused by the row path (JSON.parse: a bad escape); the fast path writes COPY escapes.
  for (const [what, v, pgReads] of [
    ['\\N: NULL', String.raw`"\N"`, 'NULL'],
    [
      '\\. at the end of a line: end of the COPY data, the rest of the batch silently dropped',
      String.raw`"x\."`,
      "'x', and no row after it",
    ],
    ['\\x41: hex', String.raw`"\x41"`, "'A'"],
    ['\\101: octal', String.raw`"\101"`, "'A'"],
    ['\\v: vertical tab', String.raw`"\v"`, 'a vertical tab'],
  ] as const) {
    it(`gives up on a string with an escape JSON does not have (${what})`, () => {
      const part = partWith('1', 'null', v);
      assert.match(rowPath(t, part), /^throws/);
      assert.equal(fastPath(t, part), undefined, `PostgreSQL would read ${pgReads}`);
    });
  }

  for (const number of ['+1', '.5', '1.', '-', '1e', 'E', '1-2', '--1', '1e5e5']) {
    it(`gives up on a number that is not JSON (${number})`, () => {
      const part = partWith(number, 'null', '"v"');
      assert.match(rowPath(t, part), /^throws/);
      assert.equal(fastPath(t, part), undefined);
    });
  }

  for (const doc of [String.raw`[\x31]`, String.raw`{"a":\x22b\x22}`, String.raw`[1,\t2]`]) {
    it(`doubles a backslash outside the strings of a json value too, as the row path does (${doc})`, () => {
      // Undoubled, COPY decodes it: [\x31] reaches PostgreSQL as [1], valid JSON.
      const part = partWith('1', doc, '"v"');
      const want = latin1(rowPath(t, part));
      assert.equal(fastPath(t, part) ?? want, want);
    });
  }

  it('gives up on (or decodes like the row path) bytes that are not UTF-8', () => {
    // The row path decodes the part (U+FFFD for each bad byte); the fast path copies the raw bytes.
    const part = Buffer.concat([
      Buffer.from('[["s.t",[1,null,"'),
      Buffer.from([0xff, 0xed, 0xa0, 0x80]),
      Buffer.from('"]]]'),
    ]);
    const want = latin1(rowPath(t, part));
    assert.equal(fastPath(t, part) ?? want, want);
  });
});
