/**
 * The row path: reads one part of a batch's rows as the Producer stored it in Redis (a JSON
 * array of `["schema.table", [values]]`, written by JSON.stringify) into rows for the ingest
 * pipeline, for the parts that the bytes path (wire-part-bytes.ts, taken first) does not take,
 * transcoding JSON text straight into COPY text. No JavaScript value is built per field, and a
 * json/jsonb value is copied as the JSON text it already is rather than parsed and stringified
 * again (parsing and stringifying was most of the worker's CPU time per row).
 *
 * How: a field is copied from the JSON text as it is when that is already its COPY text: a number
 * (the Producer wrote it with JSON.stringify, which is what `String(n)` gives), a string without
 * escapes (JSON holds no raw tab, newline or carriage return), a json value once its
 * backslashes are doubled. `true`/`false` become `t`/`f`, `null` `\N`. A string with an escape
 * is decoded and escaped again for COPY.
 *
 * The rest takes the general path, JSON.parse and then the same encoders as `ingest()`: rows of
 * tables with bytea or array columns, a row with an object in a text column or with the wrong
 * number of values, and a part that is not in JSON.stringify's compact form (from the rest of
 * the part on). Both paths write the same COPY text for the same values.
 */
import { escapeCopyText } from '../ingest/copy-encoding.ts';
import { type CopyBlock, CopyText, type EncodedRow, type SourceRow } from '../ingest/encoded-rows.ts';
import type { Row } from '../ingest/options.ts';
import type { IngestTable } from '../ingest/table-definition.ts';
import { fromWireValue, InvalidBatchError, tableKey, type WireRow } from './batch-contract.ts';
import { BACKSLASH, CLOSE_ARRAY, CLOSE_OBJECT, COMMA, OPEN_ARRAY, OPEN_OBJECT, QUOTE } from './json-chars.ts';
import { type PartLayout, partCopyText } from './wire-part-bytes.ts';

const UTF8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

interface TablePlan {
  readonly table: IngestTable;
  /** Whether its rows can be transcoded: no bytea or array column. */
  readonly transcodable: boolean;
  /** Per column: a json/jsonb column, whose values are copied as JSON text. */
  readonly json: readonly boolean[];
  /** Whether any column needs decoding from its wire form on the general path (bytea). */
  readonly decodes: boolean;
  /** For the fast path of a part of this table's rows only (wire-part-bytes.ts). */
  readonly layout: PartLayout;
  /** Rows of this table read so far (the batch's ledger row: bulk_ingest.batches `rows`). */
  rows: number;
}

export class WirePartReader {
  readonly #plans: ReadonlyMap<string, TablePlan>;
  /** Names the batch in errors, e.g. `Stream s, batch 3`. */
  readonly #label: string;

  /** BadRows.QUARANTINE: each transcoded row carries its wire JSON, to be stored if PostgreSQL refuses it. */
  readonly #keepWire: boolean;

  constructor(tables: readonly IngestTable[], label: string, keepWire = false) {
    this.#label = label;
    this.#keepWire = keepWire;
    this.#plans = new Map(
      tables.map((table) => {
        const types = table.columns.map((c) => c.parsedType);
        const json = types.map((t) => t.arrayDimensions === 0 && (t.base === 'json' || t.base === 'jsonb'));
        const transcodable = types.every((t) => t.arrayDimensions === 0 && t.base !== 'bytea');
        const decodes = types.some((t) => t.base === 'bytea');
        const key = tableKey(table);
        const layout = { keyJson: Buffer.from(JSON.stringify(key)), json };
        return [key, { table, transcodable, json, decodes, layout, rows: 0 }];
      }),
    );
  }

  /** Rows of the batch read so far: errors name a row by its position in the batch. */
  rowsRead = 0;

  /**
   * Rows read so far per table of the batch (`schema.table`, quoted as stream names are; every
   * table of the batch, 0 included). Counted here, where each row's table is known anyway, so
   * that counting costs one increment per row.
   */
  rowsPerTable(): Record<string, number> {
    return Object.fromEntries([...this.#plans].map(([key, plan]) => [key, plan.rows]));
  }

  /** A part's text; refuses bytes that are not UTF-8 (decoding would replace them silently). */
  decode(part: Uint8Array): string {
    try {
      return UTF8.decode(part);
    } catch {
      throw new InvalidBatchError(`${this.#label}: a part of its rows is not valid UTF-8`, {});
    }
  }

  /** The rows of the batch's next part. */
  *rows(part: string): Generator<SourceRow, void> {
    this.rowsRead = yield* this.#rowsOf(part, this.rowsRead);
  }

  /**
   * The COPY text of the batch's next part, as bytes, if its rows are all of `table` and none
   * needs the general path; else undefined, and the part is read with `rows`. Not under
   * BadRows.QUARANTINE, which keeps each row's wire text.
   */
  copyText(part: Uint8Array, table: IngestTable, firstOrdinal: number | undefined) {
    const plan = this.#plans.get(tableKey(table));
    if (this.#keepWire || plan?.table !== table || !plan.transcodable) return undefined;
    const text = partCopyText(part, plan.layout, firstOrdinal);
    if (text === undefined) return undefined;
    plan.rows += text.rows;
    this.rowsRead += text.rows;
    return text;
  }

  *#rowsOf(part: string, rowsBefore: number): Generator<SourceRow, number> {
    let row = rowsBefore;
    if (part.charCodeAt(0) !== OPEN_ARRAY) return yield* this.#generalRows(part, 0, row);
    const cursor = new PartCursor(part);
    let i = 1;
    if (part.charCodeAt(i) === CLOSE_ARRAY) return row;
    for (;;) {
      row += 1;
      let end = this.#transcodeRow(cursor, i, row);
      if (end >= 0) yield this.#transcoded as EncodedRow;
      else {
        end = cursor.valueEnd(i);
        const wireRow = end < 0 ? undefined : parsedJson(part.slice(i, end));
        // Not JSON: the general path refuses the part, naming the batch.
        if (wireRow === undefined) return yield* this.#generalRows(part, row - rowsBefore - 1, row - 1);
        yield this.#generalRow(wireRow as WireRow, row);
      }
      const next = part.charCodeAt(end);
      if (next === CLOSE_ARRAY && end === part.length - 1) return row;
      if (next !== COMMA) return yield* this.#generalRows(part, row - rowsBefore, row);
      i = end + 1;
    }
  }

  /** The row last transcoded. */
  #transcoded: EncodedRow | undefined;
  /** The JSON text of the last row's table name, and its plan: consecutive rows mostly share one. */
  #lastKey = '';
  #lastPlan: TablePlan | undefined;

  /**
   * Transcodes the row starting at `start` into #transcoded; returns the index just after it, or
   * -1 if the row needs the general path.
   */
  #transcodeRow(cursor: PartCursor, start: number, row: number): number {
    const s = cursor.text;
    let i = start;
    if (s.charCodeAt(i) !== OPEN_ARRAY || s.charCodeAt(i + 1) !== QUOTE) return -1;
    let plan = this.#lastPlan;
    if (plan && s.startsWith(this.#lastKey, i + 1)) i += 1 + this.#lastKey.length;
    else {
      const keyEnd = cursor.stringEnd(i + 1);
      if (keyEnd < 0) return -1;
      const key = jsonString(s, i + 1, keyEnd);
      if (key === undefined) return -1;
      plan = this.#plan(key, row);
      this.#lastKey = s.slice(i + 1, keyEnd + 1);
      this.#lastPlan = plan;
      i = keyEnd + 1;
    }
    if (!plan.transcodable) return -1;
    if (s.charCodeAt(i) !== COMMA || s.charCodeAt(i + 1) !== OPEN_ARRAY) return -1;
    i += 2;
    const json = plan.json;
    let line = '';
    for (let c = 0; c < json.length; c++) {
      if (c > 0) {
        if (s.charCodeAt(i) !== COMMA) return -1;
        i += 1;
        line += '\t';
      }
      const first = s.charCodeAt(i);
      let end: number;
      if (first === QUOTE) {
        const close = cursor.stringEnd(i);
        if (close < 0) return -1;
        end = close + 1;
        if (json[c])
          line += cursor.hasBackslash(i, close) ? escapeCopyText(s.slice(i, end)) : s.slice(i, end);
        // A string with an escape is decoded and escaped again for COPY (a rare case; most are
        // plain); one JSON does not allow takes the general path, which refuses the part.
        else if (cursor.hasBackslash(i, close)) {
          const text = parsedString(s.slice(i, end));
          if (text === undefined) return -1;
          line += escapeCopyText(text);
        } else line += s.slice(i + 1, close);
      } else if (first === OPEN_OBJECT || first === OPEN_ARRAY) {
        if (!json[c]) return -1;
        end = cursor.containerEnd(i);
        if (end < 0) return -1;
        // Backslashes doubled; and whitespace escaped, should the JSON not be compact.
        line += escapeCopyText(s.slice(i, end));
      } else {
        end = cursor.scalarEnd(i);
        if (end < 0) return -1;
        if (first === 0x6e /* n */) line += '\\N';
        else if (json[c]) line += s.slice(i, end);
        else if (first === 0x74 /* t */) line += 't';
        else if (first === 0x66 /* f */) line += 'f';
        else line += s.slice(i, end); // a number
      }
      i = end;
    }
    if (s.charCodeAt(i) !== CLOSE_ARRAY || s.charCodeAt(i + 1) !== CLOSE_ARRAY) return -1;
    // Under BadRows.QUARANTINE the row's wire text goes along (a slice: no copy), to be stored if refused.
    this.#transcoded = [
      plan.table,
      new CopyText(`${line}\n`, this.#keepWire ? s.slice(start, i + 2) : undefined),
    ];
    plan.rows += 1;
    return i + 2;
  }

  /** The rest of a part on the general path, from its `skip`-th row; rows are numbered after `row`. */
  *#generalRows(part: string, skip: number, row: number): Generator<Row, number> {
    let rows: WireRow[];
    try {
      rows = JSON.parse(part) as WireRow[];
    } catch (error) {
      throw new InvalidBatchError(
        `${this.#label}: a part of its rows is not valid JSON (${(error as Error).message})`,
        {},
      );
    }
    if (!Array.isArray(rows))
      throw new InvalidBatchError(`${this.#label}: a part of its rows is not a JSON array`, {});
    for (let r = skip; r < rows.length; r++) {
      row += 1;
      yield this.#generalRow(rows[r] as WireRow, row);
    }
    return row;
  }

  #generalRow(wireRow: WireRow, row: number): Row {
    if (!Array.isArray(wireRow))
      throw new InvalidBatchError(`${this.#label}, row ${row}: is not a [table, values] pair`, { row });
    const [key, values] = wireRow;
    const plan = this.#plan(key, row);
    plan.rows += 1;
    if (!plan.decodes || !Array.isArray(values)) return [plan.table, values];
    const columns = plan.table.columns;
    return [plan.table, values.map((v, c) => fromWireValue(columns[c]?.parsedType.base ?? '', v))];
  }

  #plan(key: string, row: number): TablePlan {
    const plan = this.#plans.get(key);
    if (!plan)
      throw new InvalidBatchError(
        `${this.#label}, row ${row}: names table "${key}", not one of the batch's`,
        {
          row,
        },
      );
    return plan;
  }
}

/** Reading positions in one part's JSON text. */
class PartCursor {
  readonly text: string;
  /** The first backslash at or after the last position asked about (text.length: none). */
  #backslash = -1;

  constructor(text: string) {
    this.text = text;
  }

  /** Whether a backslash lies between `from` and `to`. Amortized: one scan of the text in all. */
  hasBackslash(from: number, to: number): boolean {
    if (this.#backslash < from) {
      const found = this.text.indexOf('\\', from);
      this.#backslash = found < 0 ? this.text.length : found;
    }
    return this.#backslash < to;
  }

  /** The index of the closing quote of the JSON string opening at `i`, or -1. */
  stringEnd(i: number): number {
    const s = this.text;
    let quote = s.indexOf('"', i + 1);
    if (quote < 0 || !this.hasBackslash(i + 1, quote)) return quote; // no escapes: the first quote closes it
    for (;;) {
      let backslashes = 0;
      while (s.charCodeAt(quote - 1 - backslashes) === BACKSLASH) backslashes += 1;
      if (backslashes % 2 === 0) return quote;
      quote = s.indexOf('"', quote + 1);
      if (quote < 0) return -1;
    }
  }

  /** The index just after the array or object opening at `i`, or -1. Brackets inside strings do not count. */
  containerEnd(i: number): number {
    const s = this.text;
    let depth = 0;
    for (let j = i; j < s.length; j++) {
      const c = s.charCodeAt(j);
      if (c === QUOTE) {
        j = this.stringEnd(j);
        if (j < 0) return -1;
      } else if (c === OPEN_ARRAY || c === OPEN_OBJECT) depth += 1;
      else if (c === CLOSE_ARRAY || c === CLOSE_OBJECT) {
        depth -= 1;
        if (depth === 0) return j + 1;
      }
    }
    return -1;
  }

  /** The index just after the number, `true`, `false` or `null` at `i`, or -1. */
  scalarEnd(i: number): number {
    SCALAR.lastIndex = i;
    if (!SCALAR.test(this.text)) return -1;
    const end = SCALAR.lastIndex;
    const next = this.text.charCodeAt(end);
    return next === COMMA || next === CLOSE_ARRAY || next === CLOSE_OBJECT ? end : -1;
  }

  /** The index just after the JSON value at `i`, or -1. */
  valueEnd(i: number): number {
    const first = this.text.charCodeAt(i);
    if (first === QUOTE) {
      const close = this.stringEnd(i);
      return close < 0 ? -1 : close + 1;
    }
    return first === OPEN_ARRAY || first === OPEN_OBJECT ? this.containerEnd(i) : this.scalarEnd(i);
  }
}

/** A JSON number or literal, matched where it starts (sticky). */
const SCALAR = /null|true|false|-?\d+(?:\.\d+)?(?:[eE][+-]?\d+)?/y;

/** The string value of the JSON string between quotes at `open` and `close`; undefined if it is not JSON. */
function jsonString(s: string, open: number, close: number): string | undefined {
  const body = s.slice(open + 1, close);
  return body.includes('\\') ? parsedString(s.slice(open, close + 1)) : body;
}

/** A JSON string's value; undefined if it is not JSON (an escape JSON does not have). */
function parsedString(json: string): string | undefined {
  return parsedJson(json) as string | undefined;
}

/** A JSON text's value; undefined if it is not JSON. */
function parsedJson(json: string): unknown {
  try {
    return JSON.parse(json);
  } catch {
    return undefined;
  }
}

/** One part of a batch's rows as Redis gave it: a CopyBlock, read by its batch's reader. */
export class WirePart implements CopyBlock {
  readonly #reader: WirePartReader;
  readonly #bytes: Buffer;

  constructor(reader: WirePartReader, bytes: Buffer) {
    this.#reader = reader;
    this.#bytes = bytes;
  }

  copyText(table: IngestTable, firstOrdinal: number | undefined) {
    return this.#reader.copyText(this.#bytes, table, firstOrdinal);
  }

  [Symbol.iterator](): Iterator<SourceRow> {
    return this.#reader.rows(this.#reader.decode(this.#bytes));
  }
}
