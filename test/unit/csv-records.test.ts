/**
 * The CSV reader's rules (src/ops/csv-records.ts, csv-parse underneath), at every chunk boundary:
 * RFC 4180 quoting, line ends, the line each record starts on, the byte offset it ends at, and
 * errors that name the file and the line.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { csvRecords } from '../../src/ops/csv-records.ts';

const CHUNK_SIZES = [1, 2, 3, 7, 1000];

/** [line, fields] of each record, the text fed in chunks of `chunkSize` bytes. */
async function records(text: string, chunkSize: number) {
  const out: [number, string[]][] = [];
  for await (const r of csvRecords(chunks(text, chunkSize), ',', 'x.csv')) out.push([r.line, r.fields]);
  return out;
}

async function* chunks(text: string, size: number) {
  const bytes = Buffer.from(text);
  for (let i = 0; i < bytes.length; i += size) yield bytes.subarray(i, i + size);
}

async function everyChunking(text: string, want: [number, string[]][]) {
  for (const size of CHUNK_SIZES) assert.deepEqual(await records(text, size), want, `chunks of ${size}`);
}

async function rejectsEverywhere(text: string, message: RegExp) {
  for (const size of CHUNK_SIZES) await assert.rejects(records(text, size), message, `chunks of ${size}`);
}

describe('CSV records', () => {
  it('parses quotes, doubled quotes, newlines in quotes, CRLF and blank lines at any chunk boundary', async () => {
    const text = '\uFEFFa,b\r\n"x,1","say ""hi"""\r\n\r\n"two\nlines",\n,""\nlast,"q"';
    await everyChunking(text, [
      [1, ['a', 'b']],
      [2, ['x,1', 'say "hi"']],
      [4, ['two\nlines', '']],
      [6, ['', '']],
      [7, ['last', 'q']],
    ]);
  });

  it('keeps newlines inside quoted fields, LF or CRLF, and counts the lines after them right', async () => {
    // csv-parse's own line count takes a CRLF inside quotes for two lines: the reader counts its own.
    const text = 'id,note\r\n1,"first\r\nsecond\r\nthird"\r\n2,"a\nb"\r\n3,plain\r\n';
    await everyChunking(text, [
      [1, ['id', 'note']],
      [2, ['1', 'first\r\nsecond\r\nthird']],
      [5, ['2', 'a\nb']],
      [7, ['3', 'plain']],
    ]);
  });

  it('reads embedded quotes, delimiters and multi-byte characters split across chunks', async () => {
    await everyChunking('a,b\n"he said ""no, thanks""","café 東京 🐘"\n""""," "\n', [
      [1, ['a', 'b']],
      [2, ['he said "no, thanks"', 'café 東京 🐘']],
      [3, ['"', ' ']],
    ]);
  });

  it('gives each record its last line and the byte offset just after it (BOM and line end included)', async () => {
    const text = '\uFEFFa,b\r\n"x\ny",1\r\n\r\né,2';
    const got: [number, number, number][] = [];
    for await (const r of csvRecords(chunks(text, 3), ',', 'x.csv')) got.push([r.line, r.lastLine, r.end]);
    assert.deepEqual(got, [
      [1, 1, 8],
      [2, 3, 17],
      [5, 5, 23],
    ]);
    assert.equal(Buffer.byteLength(text), 23);
  });

  it('takes another delimiter, and the same text as strings', async () => {
    const out: string[][] = [];
    async function* text() {
      yield 'a\tb\n"x\t1"\t';
      yield '2\n';
    }
    for await (const r of csvRecords(text(), '\t', 'x.tsv')) out.push(r.fields);
    assert.deepEqual(out, [
      ['a', 'b'],
      ['x\t1', '2'],
    ]);
  });

  it('names the line of a quoted field never closed, and of text after a closing quote', async () => {
    await rejectsEverywhere('a\n"open\nstill', /^RowError: x\.csv line 2: a quoted field is never closed/);
    await rejectsEverywhere('a,b\n"x"y,1', /x\.csv line 2: unexpected "y" after the closing quote/);
  });

  it('names the line of a bad quote after multi-line records and blank lines, once the records before it are read', async () => {
    const text = 'a,b\r\n"1\r\n2",3\r\n\r\nok,4\r\nbad,"x"y\r\nnever,read\r\n';
    for (const size of CHUNK_SIZES) {
      const seen: number[] = [];
      await assert.rejects(
        (async () => {
          for await (const r of csvRecords(chunks(text, size), ',', 'data.csv')) seen.push(r.line);
        })(),
        /^RowError: data\.csv line 6: unexpected "y" after the closing quote of a field/,
      );
      assert.deepEqual(seen, [1, 2, 5], `chunks of ${size}: every record before the bad one, none after`);
    }
  });

  it('refuses a quote inside an unquoted field (RFC 4180), naming the line and how to write it', async () => {
    await rejectsEverywhere(
      'a,b\n1,12" pipe\n',
      /^RowError: x\.csv line 2: a quote inside an unquoted field: quote the whole field and double its quotes/,
    );
  });
});
