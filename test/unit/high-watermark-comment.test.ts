import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { PgBulkIngestError } from '../../src/errors.ts';
import { JsonObject, parseExactJson, pythonJsonDumps } from '../../src/ingest/exact-json.ts';
import { highWatermarkOf, parseComment, withHighWatermark } from '../../src/ingest/high-watermark.ts';
import { commentRefusedHere, pythonCases } from '../helpers/python-comments.ts';

const isCode = (code: string) => (e: unknown) => e instanceof PgBulkIngestError && e.code === code;

describe('high watermark comment', () => {
  it('holds all 31 cases run against the Python library', () => {
    assert.equal(pythonCases.length, 31);
  });

  for (const c of pythonCases) {
    it(`is rewritten byte for byte as the Python library wrote it: ${c.name}`, () => {
      const refusal = c.error !== undefined ? 'INVALID_COMMENT' : commentRefusedHere[c.name];
      if (refusal !== undefined) {
        assert.throws(() => parseComment(c.initial, 's', 't'), isCode(refusal));
        return;
      }
      const comment = parseComment(c.initial, 's', 't');
      assert.equal(withHighWatermark(comment, parseExactJson(c.value)), c.comment);
    });
  }

  it('keeps the other keys of the comment, ours included, in place', () => {
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

  it('writes bigints exactly and Dates as ISO 8601 strings', () => {
    assert.equal(
      withHighWatermark(new JsonObject(), {
        id: 1234567890123456789n,
        at: new Date('2024-01-02T03:04:05.678Z'),
      }),
      '{"pg-bulk-ingest": {"high-watermark": {"id": 1234567890123456789, "at": "2024-01-02T03:04:05.678Z"}}}',
    );
  });

  it('reads null from a missing comment or key, and integers beyond 2^53 as bigints', () => {
    assert.equal(highWatermarkOf(parseComment(null, 's', 't')), null);
    assert.equal(highWatermarkOf(parseComment('{"x": 1}', 's', 't')), null);
    assert.deepEqual(
      highWatermarkOf(
        parseComment('{"pg-bulk-ingest": {"high-watermark": [1, "a", 1.0, 1234567890123456789]}}', 's', 't'),
      ),
      [1, 'a', 1, 1234567890123456789n],
    );
  });

  it('refuses to overwrite a comment that is not a JSON object, or whose pg-bulk-ingest key is not one', () => {
    for (const comment of [
      'Sales by day',
      '[1]',
      '"x"',
      '{"pg-bulk-ingest": 3}',
      '{"pg-bulk-ingest": null}',
    ]) {
      assert.throws(() => parseComment(comment, 's', 't'), isCode('INVALID_COMMENT'), comment);
    }
  });

  it('writes non-ASCII escaped as Python json.dumps does', () => {
    assert.equal(
      pythonJsonDumps({ a: [1, 2.5, null, true], é: 'ü🐘' }),
      '{"a": [1, 2.5, null, true], "\\u00e9": "\\u00fc\\ud83d\\udc18"}',
    );
  });
});
