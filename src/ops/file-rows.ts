/**
 * Rows from a CSV or NDJSON file (or stdin), mapped to a table's columns and checked against
 * the batch contract, so that a bad value is reported with its file line and column instead of
 * a batch and row number. Streaming: a file of any size is read a chunk at a time.
 *
 * - CSV (RFC 4180): a header row names the columns; quoted fields may hold the delimiter,
 *   quotes (doubled) and newlines. Every value is text, converted per column type: an empty
 *   field is NULL; booleans accept true/false, t/f, yes/no, y/n, on/off, 1/0; json, jsonb and
 *   array columns take JSON text (`[1,2]`); other values go as text for PostgreSQL to parse.
 * - NDJSON: one JSON object per line, keys are column names; a missing key is NULL. Numbers keep
 *   the digits they are written with (see wire-numbers.ts), as the same value in CSV would.
 *
 * Each row says where it ends in the input (its last line and byte offset), and rows that end
 * before a given offset are read past without being converted: what file-enqueue.ts needs to
 * record and resume a position.
 */

import { createReadStream } from 'node:fs';
import type { Readable } from 'node:stream';
import { PgBulkIngestError, RowError } from '../errors.ts';
import { JsonNumber, parseJsonKeepingNumbers } from '../ingest/exact-json.ts';
import type { ColumnDefinition, IngestTable } from '../ingest/table-definition.ts';
import { tableKey, wireValueProblem } from '../queue/batch-contract.ts';
import { exactWireValue, WireNumberError } from '../queue/wire-numbers.ts';
import { type CsvRecord, csvRecords } from './csv-records.ts';

export type FileFormat = 'csv' | 'ndjson';

export interface FileRow {
  /** The file line the row starts on (1-based; the CSV header is line 1). */
  readonly line: number;
  /** The line it ends on (after `line` when a quoted CSV field holds newlines). */
  readonly lastLine: number;
  /** Byte offset just after the row and its line end. */
  readonly end: number;
  /** Wire values in column order. */
  readonly values: readonly unknown[];
}

export interface FileRowsOptions {
  readonly table: IngestTable;
  readonly format: FileFormat;
  /** Names the input in errors, e.g. `data.csv` or `stdin`. */
  readonly source: string;
  /** CSV field delimiter, one character. @default ',' */
  readonly delimiter?: string;
  /** Skip CSV header columns and NDJSON keys that are not columns of the table, instead of failing. @default false */
  readonly ignoreExtraColumns?: boolean;
  /** BadRows.QUARANTINE: a value that does not fit its column is kept, for the worker to quarantine its row. @default false */
  readonly keepBadValues?: boolean;
  /** Rows ending at or before this byte offset are read past: not converted, checked nor yielded (the CSV header is still read). @default 0 */
  readonly after?: number;
}

/** `--format` if given, else from the file name: .csv/.tsv, .ndjson/.jsonl. */
export function formatOf(path: string, given?: string): FileFormat {
  if (given === 'csv' || given === 'ndjson') return given;
  if (given !== undefined)
    throw new PgBulkIngestError('INVALID_OPTIONS', `--format: expected csv or ndjson, got "${given}"`);
  if (/\.(csv|tsv)$/i.test(path)) return 'csv';
  if (/\.(ndjson|jsonl)$/i.test(path)) return 'ndjson';
  if (path === '-')
    throw new PgBulkIngestError('INVALID_OPTIONS', 'Reading stdin: pass --format csv or --format ndjson');
  throw new PgBulkIngestError(
    'INVALID_OPTIONS',
    `Cannot tell the format of "${path}" from its name: pass --format csv or --format ndjson`,
  );
}

/** A file, or stdin for `-`, as bytes (UTF-8 is decoded per field, after the structure is found). */
export function openInput(path: string): Readable {
  return path === '-' ? process.stdin : createReadStream(path);
}

/** Rows of the table from CSV or NDJSON chunks; throws RowError naming the line and column. */
export async function* readFileRows(
  chunks: AsyncIterable<Buffer | string>,
  options: FileRowsOptions,
): AsyncGenerator<FileRow> {
  if (options.format === 'csv') {
    const delimiter = options.delimiter ?? ',';
    if (delimiter.length !== 1 || '"\r\n'.includes(delimiter)) {
      throw new PgBulkIngestError(
        'INVALID_OPTIONS',
        `--delimiter: expected one character other than a quote or newline, got ${JSON.stringify(delimiter)}`,
      );
    }
    yield* csvRows(csvRecords(chunks, delimiter, options.source), options);
  } else {
    yield* ndjsonRows(chunks, options);
  }
}

async function* csvRows(
  records: AsyncIterable<CsvRecord>,
  options: FileRowsOptions,
): AsyncGenerator<FileRow> {
  const { table, source } = options;
  const after = options.after ?? 0;
  let mapping: (number | undefined)[] | undefined; // for each column, its field index in the header
  let width = 0;
  for await (const { line, lastLine, end, fields } of records) {
    if (mapping === undefined) {
      mapping = headerMapping(
        fields.map((f) => f.trim()),
        options,
        line,
      );
      width = fields.length;
      continue;
    }
    if (end <= after) continue;
    if (fields.length !== width) {
      throw new RowError(`${source} line ${line}: has ${fields.length} fields; the header has ${width}`, {
        row: line,
        table: tableKey(table),
      });
    }
    const values = table.columns.map((column, c) => {
      const index = mapping?.[c];
      const value = index === undefined ? null : fromText(fields[index] as string, column, source, line);
      return checked(value, column, options, line);
    });
    yield { line, lastLine, end, values };
  }
}

async function* ndjsonRows(
  chunks: AsyncIterable<Buffer | string>,
  options: FileRowsOptions,
): AsyncGenerator<FileRow> {
  const { table, source } = options;
  const after = options.after ?? 0;
  const columns = new Map(table.columns.map((c, i) => [c.name, i]));
  for await (const { line, end, bytes } of lines(chunks)) {
    if (end <= after) continue;
    const text = bytes.toString('utf8');
    if (text.trim() === '') continue;
    let object: unknown;
    try {
      object = parseJsonKeepingNumbers(text); // numbers keep their digits (wire-numbers.ts)
    } catch (error) {
      throw new RowError(`${source} line ${line}: not valid JSON: ${(error as Error).message}`, {
        row: line,
        table: tableKey(table),
      });
    }
    if (object === null || typeof object !== 'object' || Array.isArray(object)) {
      throw new RowError(`${source} line ${line}: expected a JSON object with one key per column`, {
        row: line,
        table: tableKey(table),
      });
    }
    const record = object as Record<string, unknown>;
    if (!options.ignoreExtraColumns) {
      const extra = Object.keys(record).find((key) => !columns.has(key));
      if (extra !== undefined) throw unknownColumn(extra, options, line);
    }
    const values = table.columns.map((column) => checked(record[column.name] ?? null, column, options, line));
    yield { line, lastLine: line, end, values };
  }
}

function headerMapping(header: string[], options: FileRowsOptions, line: number): (number | undefined)[] {
  const { table, source } = options;
  const seen = new Map<string, number>();
  header.forEach((name, i) => {
    if (seen.has(name))
      throw new RowError(`${source} line ${line}: the header names column "${name}" twice`, {
        row: line,
        column: name,
      });
    seen.set(name, i);
    if (!options.ignoreExtraColumns && !table.columns.some((c) => c.name === name))
      throw unknownColumn(name, options, line);
  });
  return table.columns.map((column) => {
    const index = seen.get(column.name);
    if (index === undefined && !column.nullable) {
      throw new RowError(
        `${source} line ${line}: the header has no column "${column.name}", which is NOT NULL in ${tableKey(table)}`,
        {
          row: line,
          column: column.name,
        },
      );
    }
    return index;
  });
}

function unknownColumn(name: string, options: FileRowsOptions, line: number): RowError {
  const { table, source } = options;
  const known = table.columns.map((c) => c.name).join(', ');
  return new RowError(
    `${source} line ${line}: "${name}" is not a column of ${tableKey(table)} (${known}); pass --ignore-extra-columns to skip it`,
    { row: line, column: name, table: tableKey(table) },
  );
}

const TRUE_TEXT = new Set(['true', 't', 'yes', 'y', 'on', '1']);
const FALSE_TEXT = new Set(['false', 'f', 'no', 'n', 'off', '0']);

/** A CSV field as the wire value for its column. */
function fromText(text: string, column: ColumnDefinition, source: string, line: number): unknown {
  if (text === '') return null;
  const { base, arrayDimensions } = column.parsedType;
  if (arrayDimensions > 0 || base === 'json' || base === 'jsonb') {
    try {
      return parseJsonKeepingNumbers(text);
    } catch (error) {
      throw new RowError(
        `${source} line ${line}, column "${column.name}" (${column.type}): not valid JSON: ${(error as Error).message}`,
        {
          row: line,
          column: column.name,
        },
      );
    }
  }
  if (base === 'bool' || base === 'boolean') {
    const lower = text.trim().toLowerCase();
    if (TRUE_TEXT.has(lower)) return true;
    if (FALSE_TEXT.has(lower)) return false;
  }
  return text;
}

/** The wire value for the column (JSON numbers by its type, wire-numbers.ts), checked against the contract. */
function checked(parsed: unknown, column: ColumnDefinition, options: FileRowsOptions, line: number): unknown {
  const { base, arrayDimensions } = column.parsedType;
  let value: unknown;
  let problem: string | undefined;
  try {
    value = exactWireValue(parsed, base, arrayDimensions);
    problem = wireValueProblem(column.parsedType, value, column.nullable);
  } catch (error) {
    if (!(error instanceof WireNumberError)) throw error;
    problem = error.message;
    value = parsed instanceof JsonNumber ? parsed.toValue() : parsed; // kept as it came, if asked
  }
  if (problem === undefined || options.keepBadValues) return value;
  throw new RowError(`${options.source} line ${line}, column "${column.name}" (${column.type}): ${problem}`, {
    row: line,
    column: column.name,
    table: tableKey(options.table),
  });
}

const NEWLINE = 0x0a;
const CARRIAGE_RETURN = 0x0d;

/**
 * Lines with their numbers and the byte offset just after each (its `\n` included), whatever the
 * chunk boundaries. Split on bytes: a `\n` byte is never part of a multi-byte UTF-8 character, so
 * each line decodes whole. A line spanning chunks is joined once, when it ends.
 */
async function* lines(
  chunks: AsyncIterable<Buffer | string>,
): AsyncGenerator<{ line: number; end: number; bytes: Buffer }> {
  let pending: Buffer[] = []; // the start of a line not ended yet
  let offset = 0; // bytes before the current chunk
  let line = 0;
  for await (const data of chunks) {
    const chunk = typeof data === 'string' ? Buffer.from(data) : data;
    let start = 0;
    for (let nl = chunk.indexOf(NEWLINE); nl !== -1; nl = chunk.indexOf(NEWLINE, start)) {
      let bytes = chunk.subarray(start, nl);
      if (pending.length > 0) {
        bytes = Buffer.concat([...pending, bytes]);
        pending = [];
      }
      if (bytes.at(-1) === CARRIAGE_RETURN) bytes = bytes.subarray(0, -1);
      yield { line: ++line, end: offset + nl + 1, bytes };
      start = nl + 1;
    }
    if (start < chunk.length) pending.push(chunk.subarray(start));
    offset += chunk.length;
  }
  if (pending.length > 0) yield { line: ++line, end: offset, bytes: Buffer.concat(pending) };
}
