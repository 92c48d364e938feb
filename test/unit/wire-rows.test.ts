import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { CopyText } from '../../src/ingest/encoded-rows.ts';
import { defineTable, type IngestTable } from '../../src/ingest/table-definition.ts';
import { TableWriter } from '../../src/ingest/table-writer.ts';
import { WirePart, WirePartReader } from '../../src/queue/wire-part.ts';
import { WireRowWriter } from '../../src/queue/wire-row-writer.ts';

// The queue must write exactly the COPY text ingest() writes for the same values: Producer
// (WireRowWriter) -> JSON part in Redis -> worker (WirePartReader) -> TableWriter.

const scalars = defineTable({
  schema: 's',
  name: 'scalars',
  columns: [
    { name: 'big', type: 'bigint' },
    { name: 'int', type: 'integer' },
    { name: 'num', type: 'numeric(12,2)' },
    { name: 'dbl', type: 'double precision' },
    { name: 'flag', type: 'boolean' },
    { name: 'txt', type: 'text' },
    { name: 'vc', type: 'varchar(64)' },
    { name: 'at', type: 'timestamptz' },
    { name: 'day', type: 'date' },
    { name: 'doc', type: 'jsonb' },
    { name: 'raw', type: 'json' },
  ],
});

const general = defineTable({
  schema: 's',
  name: 'general',
  columns: [
    { name: 'id', type: 'integer' },
    { name: 'bytes', type: 'bytea' },
    { name: 'tags', type: 'text[]' },
  ],
});

const tricky = [
  'plain',
  '',
  'tab\there',
  'new\nline\r\n',
  'back\\slash \\N \\.',
  "quote\"d 'single'",
  'ünïcødé Zürich Москва 東京 🐘',
  '\u0001\u001f control',
  'literal \\u0041 not an escape, nor \\u0000 or \\ud800',
  'a pair 😀 \ud83d\ude00',
  '/slash/',
];

const scalarRows: unknown[][] = [
  [
    1,
    2,
    12.5,
    1.5e-7,
    true,
    'plain',
    'v',
    new Date(Date.UTC(2020, 0, 2, 3, 4, 5, 6)),
    '2020-01-02',
    { a: 1 },
    { b: 'x' },
  ],
  [-5, null, '19.99', Number.POSITIVE_INFINITY, false, null, null, '2020-01-02T03:04:05Z', null, null, null],
  [
    '9223372036854775807',
    0,
    -0.5,
    'NaN',
    null,
    '',
    '',
    null,
    new Date(Date.UTC(1999, 11, 31)),
    'a string',
    42,
  ],
  [
    2n ** 63n - 1n,
    -2147483648,
    -0,
    1e21,
    true,
    42,
    3.5,
    new Date(Date.UTC(12000, 0, 1)),
    null,
    [1, 'a', null],
    true,
  ],
  ...tricky.map((text, i) => [
    i,
    i,
    i,
    i,
    i % 2 === 0,
    text,
    text,
    null,
    null,
    { text, nested: { list: [text, null, 1.25], yes: false } },
    text,
  ]),
];

const generalRows: unknown[][] = [
  [1, Buffer.from([0, 1, 254, 255]), ['a', null, 'b"c', 'd\\e', 'tab\t']],
  [2, null, null],
  [3, '\\x0102', []],
];

function direct(table: IngestTable, rows: unknown[][]): string[] {
  const writer = new TableWriter(table, 'target');
  return rows.map((values, i) => writer.encode(values, i + 1) as string); // FAIL mode: always a line
}

/** Rows through the queue's encoding; `transcoded` counts the rows that took the fast path. */
function viaQueue(rows: [IngestTable, unknown[]][], part?: (texts: string[]) => string) {
  const tables = [...new Set(rows.map(([t]) => t))];
  const rowWriters = new Map(tables.map((t) => [t, new WireRowWriter(t)]));
  const texts = rows.map(([t, values], i) =>
    (rowWriters.get(t) as WireRowWriter).write(values, 'Batch 1', i + 1),
  );
  const text = part ? part(texts) : `[${texts.join(',')}]`;
  const copyWriters = new Map(tables.map((t) => [t, new TableWriter(t, 'target')]));
  const lines = new Map<IngestTable, string[]>(tables.map((t) => [t, []]));
  let transcoded = 0;
  let n = 0;
  for (const [table, values] of new WirePartReader(tables, 'Batch 1').rows(text)) {
    n += 1;
    if (values instanceof CopyText) transcoded += 1;
    lines.get(table)?.push((copyWriters.get(table) as TableWriter).encode(values, n) as string);
  }
  return { lines, transcoded };
}

describe('wire rows: the queue writes what ingest() writes', () => {
  it('transcodes scalar, text and json values straight to the same COPY text', () => {
    const { lines, transcoded } = viaQueue(scalarRows.map((r) => [scalars, r]));
    assert.deepEqual(lines.get(scalars), direct(scalars, scalarRows));
    assert.equal(
      transcoded,
      scalarRows.length,
      'every row of a table without bytea or arrays takes the fast path',
    );
  });

  it('decodes bytea and arrays by the general path, to the same COPY text', () => {
    const { lines, transcoded } = viaQueue(generalRows.map((r) => [general, r]));
    assert.deepEqual(lines.get(general), direct(general, generalRows));
    assert.equal(transcoded, 0);
  });

  it('keeps interleaved rows of fast and general tables in order', () => {
    const rows: [IngestTable, unknown[]][] = [];
    for (let i = 0; i < 3; i++)
      rows.push([scalars, scalarRows[i] as unknown[]], [general, generalRows[i] as unknown[]]);
    const { lines, transcoded } = viaQueue(rows);
    assert.deepEqual(lines.get(scalars), direct(scalars, scalarRows.slice(0, 3)));
    assert.deepEqual(lines.get(general), direct(general, generalRows));
    assert.equal(transcoded, 3);
  });

  it('reads a part that is valid JSON but not compact (spaces, newlines) the same way', () => {
    const rows = scalarRows.map((r): [IngestTable, unknown[]] => [scalars, r]);
    const spaced = viaQueue(
      rows,
      (texts) => `[\n ${texts.map((t) => JSON.stringify(JSON.parse(t), null, 1)).join(' ,\n')} ]`,
    );
    assert.deepEqual(spaced.lines.get(scalars), direct(scalars, scalarRows));
    const oneSpaced = viaQueue(rows, (texts) => `[${texts.join(',')} ]`);
    assert.deepEqual(oneSpaced.lines.get(scalars), direct(scalars, scalarRows));
  });

  it('never lets whitespace inside a json value break a COPY line', () => {
    const docs = defineTable({ schema: 's', name: 'docs', columns: [{ name: 'doc', type: 'json' }] });
    const rows = [...new WirePartReader([docs], 'Batch 1').rows('[["s.docs",[{\n\t"a": [1,\r\n 2]}]]]')];
    assert.equal(new TableWriter(docs, 'target').encode(rows[0]?.[1], 1), '{\\n\\t"a": [1,\\r\\n 2]}\n');
  });

  it('takes the general path for a row that does not fit the fast one, which then fails as ingest() would', () => {
    const reader = new WirePartReader([scalars], 'Stream s, batch 4');
    reader.rowsRead = 10; // rows of earlier parts
    const short = '[["s.scalars",[1,2]],["s.scalars",[1,2,3,4,true,{"o":1},"v",null,null,null,null]]]';
    const [first, second] = [...reader.rows(short)];
    const writer = new TableWriter(scalars, 'target');
    assert.throws(
      () => writer.encode(first?.[1], 11),
      /Row 11 of the batch for "s"\."scalars" has 2 values; the table has 11 columns/,
    );
    assert.throws(
      () => writer.encode(second?.[1], 12),
      /Row 12 .*column "txt": value cannot be written to this column: an object/,
    );
  });

  it('refuses a row naming a table that is not in the batch, and a part that is not JSON, naming the batch and row', () => {
    const reader = new WirePartReader([scalars], 'Stream s, batch 4');
    reader.rowsRead = 7;
    assert.throws(
      () => [...reader.rows('[["s.other",[1]]]')],
      /Stream s, batch 4, row 8: names table "s\.other", not one of the batch's/,
    );
    assert.throws(
      () => [...reader.rows('[["s.scalars",[1,')],
      /Stream s, batch 4: a part of its rows is not valid JSON/,
    );
    assert.throws(() => [...reader.rows('{"rows":[]}')], /not a JSON array/);
    // An escape JSON does not have (COPY would read \N as NULL) and bytes that are not UTF-8:
    // refused as the batch's, not passed on nor replaced.
    assert.throws(
      () => [...reader.rows(String.raw`[["s.scalars",[1,2,3,4,true,"\N","v",null,null,null,null]]]`)],
      (error: Error & { code?: string }) =>
        error.code === 'INVALID_BATCH_JOB' && /not valid JSON/.test(error.message),
    );
    const notUtf8 = Buffer.concat([
      Buffer.from('[["s.scalars",[1,2,3,4,true,"'),
      Buffer.from([0xff]),
      Buffer.from('"]]]'),
    ]);
    assert.throws(
      () => [...new WirePart(reader, notUtf8)],
      /Stream s, batch 4: a part of its rows is not valid UTF-8/,
    );
    assert.deepEqual([...reader.rows('[]')], []);
  });

  it('numbers rows across parts by their position in the batch', () => {
    const reader = new WirePartReader([general, scalars], 'Batch 1');
    assert.equal([...reader.rows('[["s.general",[1,null,null]],["s.general",[2,null,null]]]')].length, 2);
    assert.equal([...reader.rows('[["s.general",[3,null,null]]]')].length, 1);
    assert.equal(reader.rowsRead, 3);
    assert.throws(
      () => [...reader.rows('[["s.general",[4,null,null]],["s.nope",[]]]')],
      /Batch 1, row 5: names table "s\.nope"/,
    );
  });
});

/** The rows as the Producer writes them into one part: UTF-8 bytes of a JSON array. */
function partOf(table: IngestTable, rows: unknown[][]): Buffer {
  const writer = new WireRowWriter(table);
  return Buffer.from(`[${rows.map((values, i) => writer.write(values, 'Batch 1', i + 1)).join(',')}]`);
}

describe('wire rows: a part of one table, bytes straight to COPY text', () => {
  it('gives the bytes of the lines ingest() writes, for every value but a \\u escape', () => {
    let fast = 0;
    for (const [i, values] of scalarRows.entries()) {
      const part = new WirePart(new WirePartReader([scalars], 'Batch 1'), partOf(scalars, [values]));
      const text = part.copyText(scalars, undefined);
      const want = direct(scalars, [values]).join('');
      const escapesU = /\\u/.test(partOf(scalars, [values]).toString().replaceAll('\\\\', ''));
      if (text === undefined) assert.ok(escapesU, `row ${i}: only a \\u escape takes the general path`);
      else {
        fast += 1;
        assert.equal(Buffer.from(text.bytes).toString(), want, `row ${i}`);
      }
      assert.equal([...part].map(([, v]) => new TableWriter(scalars, 'target').encode(v, 1)).join(''), want);
    }
    assert.equal(fast, scalarRows.length - 1, 'one row holds a control character, written as \\u0001');
  });

  it('numbers the lines with their ordinals, as the staging table wants them', () => {
    const rows = scalarRows.filter((_, i) => i !== 4 + 7); // the row with \u0001
    const text = new WirePartReader([scalars], 'Batch 1').copyText(partOf(scalars, rows), scalars, 41);
    const staging = new TableWriter(scalars, 'staging', '_ordinal');
    staging.rowCount = 40;
    assert.equal(
      Buffer.from(text?.bytes ?? []).toString(),
      rows.map((values, i) => staging.encode(values, i + 1)).join(''),
    );
  });

  it('counts the rows it takes for the batch; gives up without counting on anything unusual', () => {
    const reader = new WirePartReader([scalars, general], 'Batch 1');
    const good = partOf(scalars, scalarRows.slice(0, 3));
    assert.equal(reader.copyText(good, scalars, undefined)?.rows, 3);
    const row = partOf(scalars, scalarRows.slice(0, 1)).toString();
    const unusual = [
      ['a table without the fast path', partOf(general, generalRows.slice(0, 1)).toString(), general],
      [
        'a row of another table',
        `[${row.slice(1, -1)},${partOf(general, [generalRows[1] as unknown[]])
          .toString()
          .slice(1, -1)}]`,
      ],
      ['spaces', `[ ${row.slice(1)}`],
      ['spaces inside a json value', row.replace('{"a":1}', '{"a": 1}')],
      ['a short row', '[["s.scalars",[1,2]]]'],
      ['a long row', row.replace(',{"b":"x"}]]', ',{"b":"x"},1]]')],
      ['an object in a text column', row.replace('"plain"', '{"o":1}')],
      ['a bad literal', row.replace('true', 'trve')],
      ['a number that is not', row.replace(',12.5,', ',12x5,')],
      ['a tab in a string', row.replace('plain', 'pl\tain'.replace('\\t', '\t'))],
      ['a cut part', row.slice(0, -3)],
      ['no array', '{"rows":[]}'],
      ['something after the end', `${row} `],
    ] as const;
    for (const [what, text, table = scalars] of unusual) {
      assert.equal(reader.copyText(Buffer.from(text), table as IngestTable, undefined), undefined, what);
    }
    assert.equal(reader.rowsRead, 3);
    assert.deepEqual(reader.rowsPerTable(), { 's.scalars': 3, 's.general': 0 });
    assert.equal(reader.copyText(Buffer.from('[]'), scalars, 1)?.rows, 0);
  });

  it('doubles every backslash of a json value, escaped or escaping; unescapes " and / in text', () => {
    const docs = defineTable({
      schema: 's',
      name: 'docs',
      columns: [
        { name: 'doc', type: 'jsonb' },
        { name: 'txt', type: 'text' },
      ],
    });
    // A backslash before b, a quote, a slash, two backslashes: JSON escapes every one but the
    // slash; a JSON writer may escape the slash too (`\/`).
    const text = String.raw`a\b"c/d\\e`;
    const values = [{ k: text, [text]: [text] }, text];
    const json = JSON.stringify([['s.docs', values]]);
    const want = new TableWriter(docs, 'target').encode(values, 1);
    for (const part of [json, json.replaceAll('c/d', String.raw`c\/d`)]) {
      const got = new WirePartReader([docs], 'Batch 1').copyText(Buffer.from(part), docs, undefined);
      // A json value keeps its `\/` (the same JSON), its backslash doubled for COPY; text loses it.
      const [doc, txt] = (want as string).split('\t');
      const expected = part === json ? want : `${doc?.replaceAll('c/d', String.raw`c\\/d`)}\t${txt}`;
      assert.equal(Buffer.from(got?.bytes ?? []).toString(), expected, part);
    }
  });
});

describe('wire rows: the producer checks values before they travel', () => {
  const writer = new WireRowWriter(
    defineTable({
      schema: 's',
      name: 't',
      columns: [
        { name: 'id', type: 'bigint', nullable: false },
        { name: 'at', type: 'timestamptz' },
        { name: 'name', type: 'text' },
        { name: 'doc', type: 'jsonb' },
      ],
    }),
  );

  it('names the batch, row, table and column of a bad value', () => {
    assert.throws(
      () => writer.write([null, null, null, null], 'Batch 2', 9),
      /Batch 2, row 9 \(s\.t\), column "id" \(bigint\): is null, but the column is NOT NULL/,
    );
    assert.throws(
      () => writer.write(['12a', null, null, null], 'Batch 2', 9),
      /column "id" \(bigint\): expected an integer or a string of digits, got "12a"/,
    );
    assert.throws(
      () => writer.write([2 ** 60, null, null, null], 'Batch 2', 9),
      /beyond 2\^53: send it as a string/,
    );
    assert.throws(
      () => writer.write([1, new Date(Number.NaN), null, null], 'Batch 2', 9),
      /column "at" \(timestamptz\): is an invalid Date/,
    );
    assert.throws(
      () => writer.write([1, null, { a: 1 }, null], 'Batch 2', 9),
      /column "name" \(text\): expected a string, got an object/,
    );
    assert.throws(
      () => writer.write([1, null, null, () => 1], 'Batch 2', 9),
      /column "doc" \(jsonb\): cannot be encoded as JSON/,
    );
    assert.throws(
      () => writer.write([1, null], 'Batch 2', 9),
      /Batch 2, row 9 \(s\.t\): has 2 values; the table has 4 columns/,
    );
  });

  it('writes bigints inside json values as strings, as ingest() does', () => {
    assert.equal(
      writer.write([1n, null, 'x', { n: 2n ** 64n }], 'Batch 1', 1),
      '["s.t",["1",null,"x",{"n":"18446744073709551616"}]]',
    );
  });
});

describe('wire rows: ingest() and the queue refuse the same values', () => {
  const table = defineTable({
    schema: 's',
    name: 'values',
    columns: [
      { name: 'doc', type: 'jsonb' },
      { name: 'raw', type: 'json' },
      { name: 'txt', type: 'text' },
      { name: 'tags', type: 'text[]' },
      { name: 'at', type: 'timestamptz' },
    ],
  });
  const row = (column: string, value: unknown) =>
    table.columns.map((c) => (c.name === column ? value : null));

  it('refuses json values JSON cannot hold (NaN, Infinity, Buffers, Maps, invalid Dates), where JSON.stringify would change them', () => {
    const refused: [column: string, value: unknown, message: RegExp][] = [
      ['doc', Number.NaN, /holds NaN, which JSON cannot hold/],
      ['doc', { a: Number.NaN }, /holds NaN.*\(at \.a\)/],
      ['raw', [1, Number.POSITIVE_INFINITY], /holds Infinity.*\(at \[1\]\)/],
      ['doc', Number.NEGATIVE_INFINITY, /holds -Infinity/],
      ['doc', Buffer.from([1, 2]), /holds a Buffer: JSON has no bytes/],
      ['raw', { file: new Uint8Array([1]) }, /holds a Buffer.*\(at \.file\)/],
      ['doc', [Buffer.from('x')], /holds a Buffer.*\(at \[0\]\)/],
      ['doc', { m: new Map() }, /holds a Map/],
      ['doc', { at: new Date(Number.NaN) }, /holds an invalid Date/],
    ];
    for (const [column, value, message] of refused) {
      const values = row(column, value);
      assert.throws(() => new TableWriter(table, 'target').encode(values, 3), message, `ingest(): ${column}`);
      assert.throws(
        () => new WireRowWriter(table).write(values, 'Batch 1', 3),
        (e: Error) => message.test(e.message) && e.message.includes(`column "${column}"`),
        `queue: ${column}`,
      );
    }
  });

  it('refuses NUL and lone surrogates in text, text[] and jsonb; a json column keeps them as escapes in both', () => {
    for (const [column, value] of [
      ['txt', 'lone \ud800 surrogate'],
      ['txt', 'nul \u0000'],
      ['tags', ['ok', 'lone \udc00']],
      ['doc', { key: ['lone \ud800'] }],
      ['doc', { 'nul \u0000 key': 1 }],
    ] as const) {
      const values = row(column, value);
      assert.throws(() => new TableWriter(table, 'target').encode(values, 1), /NUL|lone UTF-16 surrogate/);
      assert.throws(
        () => new WireRowWriter(table).write(values, 'Batch 1', 1),
        /column "(txt|tags|doc)".*(NUL|lone UTF-16 surrogate)/,
      );
    }
    const kept = [row('raw', { text: 'lone \ud800 and nul \u0000' })];
    const { lines } = viaQueue([[table, kept[0] as unknown[]]]);
    assert.deepEqual(lines.get(table), direct(table, kept));
  });

  it('writes Dates of any year as PostgreSQL reads them, the same both ways', () => {
    const years = [12000, 275760, 999, 1, 0, -1, -4712];
    const rows = years.map((year) => {
      const at = new Date(Date.UTC(2000, 5, 15, 1, 2, 3, 4));
      at.setUTCFullYear(year);
      return row('at', at);
    });
    const { lines } = viaQueue(rows.map((r) => [table, r]));
    assert.deepEqual(lines.get(table), direct(table, rows));
    assert.deepEqual(
      direct(table, rows).map((line) => line.split('\t')[4]),
      [
        '12000-06-15T01:02:03.004Z',
        '275760-06-15T01:02:03.004Z',
        '0999-06-15T01:02:03.004Z',
        '0001-06-15T01:02:03.004Z',
        '0001-06-15T01:02:03.004Z BC',
        '0002-06-15T01:02:03.004Z BC',
        '4713-06-15T01:02:03.004Z BC',
      ].map((text) => `${text}\n`),
    );
  });
});

describe('wire rows: the producer refuses what PostgreSQL would, naming the column', () => {
  const writer = new WireRowWriter(
    defineTable({
      schema: 's',
      name: 'typed',
      columns: [
        { name: 'small', type: 'smallint' },
        { name: 'amount', type: 'numeric(12,2)' },
        { name: 'name', type: 'varchar(4)' },
        { name: 'at', type: 'timestamp' },
        { name: 'clock', type: 'time' },
        { name: 'id', type: 'uuid' },
      ],
    }),
  );
  const write = (values: unknown[]) => writer.write(values, 'Batch 5', 2);
  const nulls = [null, null, null, null, null, null];
  const at = (i: number, value: unknown) => nulls.map((v, j) => (j === i ? value : v));

  it('takes edge values that fit', () => {
    const early = new Date(Date.UTC(2000, 0, 1));
    early.setUTCFullYear(-4712); // 4713 BC
    assert.equal(
      write([-32768, 9999999999.99, 'ab😀 ', early, '24:00:00', 'A0EEBC999C0B4EF8BB6D6BB9BD380A11']),
      '["s.typed",[-32768,9999999999.99,"ab😀 ","4713-01-01T00:00:00.000Z BC","24:00:00","A0EEBC999C0B4EF8BB6D6BB9BD380A11"]]',
    );
    assert.equal(write(at(1, Number.NaN)), '["s.typed",[null,"NaN",null,null,null,null]]');
  });

  it('refuses each value PostgreSQL would refuse', () => {
    const tooEarly = new Date(Date.UTC(2000, 0, 1));
    tooEarly.setUTCFullYear(-5000);
    const refused: [column: number, value: unknown, message: RegExp][] = [
      [0, 32768, /column "small" \(smallint\): is out of range for smallint/],
      [0, Number.NaN, /column "small" \(smallint\): is NaN: smallint cannot hold NaN or Infinity/],
      [0, 40000n, /out of range for smallint/],
      [1, 1e10, /column "amount" \(numeric\(12,2\)\): has 11 digits before the decimal point/],
      [1, Number.POSITIVE_INFINITY, /numeric\(12,2\) cannot hold Infinity/],
      [2, 'abcde', /column "name" \(varchar\(4\)\): is longer than 4 characters/],
      [2, 12345, /is longer than 4 characters/],
      [3, '2024-02-30T25:61:00Z', /column "at" \(timestamp\): has day 30/],
      [3, 'yesterday-ish', /is not an ISO 8601 timestamp/],
      [3, tooEarly, /is out of range for a timestamp/],
      [4, new Date(0), /column "clock" \(time\): is not a time of day/],
      [5, 'not-a-uuid', /column "id" \(uuid\): is not a uuid/],
    ];
    for (const [i, value, message] of refused)
      assert.throws(
        () => write(at(i, value)),
        (e: Error) => message.test(e.message) && /^Batch 5, row 2 \(s\.typed\)/.test(e.message),
        String(value),
      );
  });
});
