/**
 * The producer builds a batch header's JSON from pieces it caches (encodeHeader): the text must
 * be exactly what stringifyJson(header) writes, for every kind of field, or a worker would read
 * another header than the producer meant.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { parseJsonKeepingNumbers, stringifyJson } from '../../src/ingest/exact-json.ts';
import { type BatchHeader, encodeHeader } from '../../src/queue/stream-store.ts';

const base: BatchHeader = {
  version: 1,
  stream: 'shop.orders',
  batchId: 'b-1',
  uploadId: 'u-1',
  tables: [
    {
      schema: 'shop',
      name: 'orders',
      columns: [{ name: 'id', type: 'integer', nullable: false, primaryKey: true }],
      indexes: [],
    },
  ] as unknown as BatchHeader['tables'],
  highWatermark: '2024-01-01',
  metadata: null,
  options: {
    upsert: 'if-primary-key',
    delete: 'off',
    visibility: 'after-each-batch',
  } as unknown as BatchHeader['options'],
  parts: 1,
  rows: 10,
  bytes: 1234,
  enqueuedAt: 1_795_000_000_000,
};

const cases: [string, BatchHeader][] = [
  ['a plain header', base],
  ['refused rows', { ...base, refusedRows: [[3, 'column "id" (integer): "x" is not an integer']] }],
  [
    'names with quotes, backslashes, control characters and emoji',
    { ...base, stream: 'a"b\\c\n\u0001 🎉 {x}:%', batchId: '"\t"', uploadId: 'ü' },
  ],
  [
    'exact numbers and nesting in the watermark and metadata',
    {
      ...base,
      highWatermark: parseJsonKeepingNumbers(
        '{"b": 12345678901234567890, "a": [1.10, -0.0, 1e400]}',
      ) as never,
      metadata: { deep: [[{ x: 'y' }]], n: 9007199254740993n } as never,
    },
  ],
  ['an empty object watermark and metadata', { ...base, highWatermark: {}, metadata: [] }],
];

describe('encodeHeader', () => {
  for (const [what, header] of cases) {
    it(`writes what stringifyJson writes: ${what}`, () => {
      const encoded = encodeHeader(header, stringifyJson(header.tables));
      assert.equal(encoded.text, stringifyJson(header));
      assert.equal(encoded.highWatermark, stringifyJson(header.highWatermark));
      assert.equal(
        encoded.content,
        stringifyJson([header.tables, header.highWatermark, header.metadata, header.options]),
      );
    });
  }

  it('refuses a header that has an epoch (only the append script gives one)', () => {
    assert.throws(() => encodeHeader({ ...base, epoch: 'e-1' }, '[]'), { code: 'INTERNAL_INVARIANT' });
  });
});
