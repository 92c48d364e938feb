import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { PgBulkIngestError } from '../../src/errors.ts';
import {
  highWatermarkOf,
  parseComment,
  pythonJsonDumps,
  withHighWatermark,
} from '../../src/ingest/high-watermark.ts';

describe('high watermark comment', () => {
  it('is written exactly as the Python library writes it', () => {
    assert.equal(withHighWatermark({}, '2015-01-01'), '{"pg-bulk-ingest": {"high-watermark": "2015-01-01"}}');
    assert.equal(
      pythonJsonDumps({ a: [1, 2.5, null, true], é: 'ü🐘' }),
      '{"a": [1, 2.5, null, true], "\\u00e9": "\\u00fc\\ud83d\\udc18"}',
    );
  });

  it('keeps the other keys of the comment, ours included', () => {
    const parsed = parseComment(
      '{"owner": "team-a", "pg-bulk-ingest": {"other": 1, "high-watermark": 1}}',
      's',
      't',
    );
    assert.equal(
      withHighWatermark(parsed, 2),
      '{"owner": "team-a", "pg-bulk-ingest": {"other": 1, "high-watermark": 2}}',
    );
  });

  it('reads null from a missing comment or key', () => {
    assert.equal(highWatermarkOf(parseComment(null, 's', 't')), null);
    assert.equal(highWatermarkOf(parseComment('{"x": 1}', 's', 't')), null);
    assert.deepEqual(
      highWatermarkOf(parseComment('{"pg-bulk-ingest": {"high-watermark": [1, "a"]}}', 's', 't')),
      [1, 'a'],
    );
  });

  it('refuses to overwrite a comment that is not a JSON object', () => {
    assert.throws(
      () => parseComment('Sales by day', 's', 't'),
      (e: unknown) => e instanceof PgBulkIngestError && e.code === 'INVALID_COMMENT',
    );
  });
});
