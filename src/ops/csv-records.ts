/**
 * CSV (RFC 4180) records from text chunks, streaming: quoted fields may hold the delimiter,
 * doubled quotes and newlines; CRLF or LF line ends; a byte order mark is dropped; blank lines
 * are skipped. Each record carries the file line it starts on, for error messages.
 */
import { RowError } from '../errors.ts';

export interface CsvRecord {
  readonly line: number;
  readonly fields: string[];
}

/**
 * RFC 4180 records, streaming. States: at the start of a field, in an unquoted field, in a
 * quoted field, or just after a quote inside a quoted field (a doubled quote or the closing one:
 * the next character decides, even when it is in the next chunk). Blank lines are skipped.
 */
export async function* csvRecords(
  chunks: AsyncIterable<string>,
  delimiter: string,
  source: string,
): AsyncGenerator<CsvRecord> {
  let state: 'start' | 'unquoted' | 'quoted' | 'quote' = 'start';
  let field = '';
  let fields: string[] = [];
  let line = 1;
  let recordLine = 1;
  let first = true;
  const special = new RegExp(
    `[${delimiter === ']' || delimiter === '\\' || delimiter === '^' ? `\\${delimiter}` : delimiter}\\r\\n"]`,
    'g',
  );
  for await (let chunk of chunks) {
    if (first && chunk.charCodeAt(0) === 0xfeff) chunk = chunk.slice(1); // byte order mark
    first = false;
    let i = 0;
    const records: CsvRecord[] = [];
    const endRecord = () => {
      fields.push(field);
      if (fields.length > 1 || field !== '' || state === 'quote') records.push({ line: recordLine, fields });
      fields = [];
      field = '';
      state = 'start';
      line += 1;
      recordLine = line;
    };
    while (i < chunk.length) {
      if (state === 'quoted') {
        const quote = chunk.indexOf('"', i);
        const end = quote === -1 ? chunk.length : quote;
        const text = chunk.slice(i, end);
        for (let n = text.indexOf('\n'); n !== -1; n = text.indexOf('\n', n + 1)) line += 1;
        field += text;
        i = end + 1;
        if (quote !== -1) state = 'quote';
        continue;
      }
      if (state === 'unquoted' || state === 'start') {
        special.lastIndex = i;
        const match = special.exec(chunk);
        const end = match ? match.index : chunk.length;
        if (end > i) {
          field += chunk.slice(i, end);
          state = 'unquoted';
        }
        i = end;
        if (!match) continue;
      }
      const c = chunk[i] as string;
      i += 1;
      if (c === '\r') continue; // before \n (or stray): never part of an unquoted value
      if (state === 'quote') {
        if (c === '"') {
          field += '"';
          state = 'quoted';
          continue;
        }
        if (c !== delimiter && c !== '\n') {
          throw new RowError(
            `${source} line ${line}: unexpected ${JSON.stringify(c)} after the closing quote of a field`,
            { row: line },
          );
        }
      } else if (c === '"') {
        if (state === 'start') state = 'quoted';
        else field += c; // a stray quote inside an unquoted field: kept as it is
        continue;
      }
      if (c === delimiter) {
        fields.push(field);
        field = '';
        state = 'start';
      } else endRecord();
    }
    yield* records;
  }
  if (state === 'quoted')
    throw new RowError(
      `${source} line ${recordLine}: a quoted field is never closed (reached the end of the input)`,
      { row: recordLine },
    );
  if (fields.length > 0 || field !== '' || state === 'quote') {
    fields.push(field);
    yield { line: recordLine, fields };
  }
}
