/**
 * CSV (RFC 4180) records from a byte stream, parsed by `csv-parse`: quoted fields may hold the
 * delimiter, doubled quotes and newlines; CRLF or LF line ends, mixed; a byte order mark is
 * dropped; blank lines are skipped. Strict about quotes, as RFC 4180 is: text after a closing
 * quote, a quote inside an unquoted field and a quote never closed are errors naming the file
 * and line (a field with a quote in it must be quoted, its quotes doubled: `"12"" pipe"`).
 *
 * Each record carries the line it starts on and the byte offset where it ends, which is what a
 * file enqueue records as its position (file-enqueue.ts). Lines are counted here, from the
 * fields, not taken from csv-parse's `info.lines`: that counts a CRLF inside a quoted field as
 * two lines.
 *
 * Why csv-parse rather than the hand-written state machine it replaced: the same rules,
 * kept by its maintainers. It parses at about half the speed (6.4 s against 2.9 s of CPU for
 * 1,000,000 rows, bench/csv-read.ts), which does not show in `enqueue` end to end, where
 * checking values and the Producer's work dominate.
 */
import { pipeline } from 'node:stream/promises';
import { type CsvError, Parser } from 'csv-parse';
import { RowError } from '../errors.ts';

export interface CsvRecord {
  /** The line the record starts on (1-based). */
  readonly line: number;
  /** The line it ends on: after `line` when a quoted field holds newlines. */
  readonly lastLine: number;
  /** Byte offset just after the record and its line end, in the input as read (BOM included). */
  readonly end: number;
  readonly fields: string[];
}

/** A record as PositionedParser pushes it. */
type Parsed = [fields: string[], end: number, emptyLines: number];

/**
 * csv-parse's parser, each record pushed with the byte offset where it ends and the count of blank
 * lines skipped so far. csv-parse pushes a record as soon as its line end is parsed, when its live
 * `info` says exactly that; its `info: true` option says the same but copies the whole info
 * object twice per record.
 */
class PositionedParser extends Parser {
  override push(record: unknown, encoding?: BufferEncoding): boolean {
    if (record === null) return super.push(null);
    return super.push(
      [record as string[], this.info.bytes, this.info.empty_lines] satisfies Parsed,
      encoding,
    );
  }
}

/** RFC 4180 records of the input, streaming; throws RowError naming `source` and the line. */
export async function* csvRecords(
  chunks: AsyncIterable<Buffer | string>,
  delimiter: string,
  source: string,
): AsyncGenerator<CsvRecord> {
  const parser = new PositionedParser({
    delimiter,
    bom: true,
    record_delimiter: ['\r\n', '\n'],
    skip_empty_lines: true,
    relax_column_count: true, // file-rows.ts compares each record with the header, naming both widths
    // A bad record is reported through 'skip' instead of destroying the stream, which would drop
    // the good records parsed before it and still waiting to be read: they are yielded first.
    skip_records_with_error: true,
  });
  let failure: CsvError | undefined;
  parser.on('skip', (error: CsvError) => {
    failure ??= error;
  });
  async function* untilFailure() {
    for await (const chunk of chunks) {
      if (failure) return; // nothing after a bad record is read
      yield chunk;
    }
  }
  // Failures of the input reach the loop below through the parser; the pipeline repeats them.
  const feeding = pipeline(untilFailure(), parser).catch(() => undefined);
  let records = 0;
  let lastLine = 0;
  let emptyLines = 0;
  try {
    for await (const [fields, end, empty] of parser as AsyncIterable<Parsed>) {
      if (failure && records === failure.records) break;
      const line = lastLine + 1 + empty - emptyLines;
      lastLine = line + newlinesIn(fields);
      emptyLines = empty;
      records += 1;
      yield { line, lastLine, end, fields };
    }
    if (failure) {
      const empty = typeof failure.empty_lines === 'number' ? failure.empty_lines : emptyLines;
      const line = lastLine + 1 + empty - emptyLines;
      throw new RowError(`${source} line ${line}: ${describe(failure)}`, { row: line });
    }
  } finally {
    parser.destroy();
    await feeding;
  }
}

function newlinesIn(fields: readonly string[]): number {
  let count = 0;
  for (const field of fields)
    for (let i = field.indexOf('\n'); i !== -1; i = field.indexOf('\n', i + 1)) count += 1;
  return count;
}

/** csv-parse's error in our words; its line count is not used (see the header). */
function describe(error: CsvError): string {
  switch (error.code) {
    case 'CSV_QUOTE_NOT_CLOSED':
      return 'a quoted field is never closed (reached the end of the input)';
    case 'CSV_INVALID_CLOSING_QUOTE': {
      const found = /got "(.*)" at line/s.exec(error.message)?.[1];
      return `unexpected ${found ? JSON.stringify(found) : 'text'} after the closing quote of a field (a quote inside a quoted field is doubled: "say ""hi""")`;
    }
    case 'INVALID_OPENING_QUOTE':
      return 'a quote inside an unquoted field: quote the whole field and double its quotes ("12"" pipe")';
    default:
      return error.message.replace(/ at line \d+/, '');
  }
}
