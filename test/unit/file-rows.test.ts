/**
 * Where each row of a file ends, and reading past the rows enqueued before (`after`), the same
 * for CSV and NDJSON: what a file enqueue records as its position and resumes from
 * (src/ops/file-enqueue.ts; end to end in test/integration/enqueue-cli.test.ts).
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { type FileFormat, readFileRows } from '../../src/ops/file-rows.ts';
import { plainTable } from '../helpers/tables.ts';

const table = plainTable('s', 't'); // (id integer, value text)

async function rows(text: string, format: FileFormat, after = 0, chunkSize = 3) {
  async function* chunks() {
    const bytes = Buffer.from(text);
    for (let i = 0; i < bytes.length; i += chunkSize) yield bytes.subarray(i, i + chunkSize);
  }
  const out: [line: number, lastLine: number, end: number, values: readonly unknown[]][] = [];
  for await (const r of readFileRows(chunks(), { table, format, source: 'f', after }))
    out.push([r.line, r.lastLine, r.end, r.values]);
  return out;
}

describe('file rows: positions', () => {
  const csv = 'id,value\r\n1,"é\r\nx"\r\n\r\n2,b\r\n3,c';
  const ndjson = '{"id":1,"value":"é"}\r\n\n{"id":2,"value":"b"}\n{"id":3,"value":"c"}';

  it('gives each CSV row its lines and the byte offset after it, multi-byte characters counted as bytes', async () => {
    assert.deepEqual(await rows(csv, 'csv'), [
      [2, 3, 21, ['1', 'é\r\nx']], // CSV values are text: PostgreSQL parses the integer
      [5, 5, 28, ['2', 'b']],
      [6, 6, 31, ['3', 'c']],
    ]);
  });

  it('gives each NDJSON row its line and the byte offset after it, blank lines skipped', async () => {
    assert.deepEqual(await rows(ndjson, 'ndjson'), [
      [1, 1, 23, [1, 'é']],
      [3, 3, 45, [2, 'b']],
      [4, 4, 65, [3, 'c']],
    ]);
  });

  it('reads past the rows ending at or before `after`, at any chunk size; the CSV header still maps the columns', async () => {
    for (const size of [1, 4, 1000]) {
      assert.deepEqual(
        (await rows(csv, 'csv', 21, size)).map((r) => r[3]),
        [
          ['2', 'b'],
          ['3', 'c'],
        ],
      );
      assert.deepEqual(
        (await rows(ndjson, 'ndjson', 45, size)).map((r) => r[3]),
        [[3, 'c']],
      );
    }
  });

  it('does not convert nor check the rows read past: a bad value before `after` is not reported again', async () => {
    const bad = 'id,value\nnot a number,x\n2,y\n';
    await assert.rejects(rows(bad, 'csv'), /f line 2, column "id" \(integer\)/);
    assert.deepEqual(await rows(bad, 'csv', 24), [[3, 3, 28, ['2', 'y']]]);
  });
});
