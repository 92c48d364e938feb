/**
 * Reads one part of a batch's rows as the Producer stored it in Redis (a JSON array of
 * `["schema.table", [values]]`, written by JSON.stringify) into rows for the ingest pipeline,
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
import { copyTextRow } from '../ingest/copy-text.ts';
import type { Row } from '../ingest/options.ts';
import type { IngestTable } from '../ingest/table-definition.ts';
import { fromWireValue, InvalidBatchError, tableKey, type WireRow } from './batch-contract.ts';

const QUOTE = 0x22;
const BACKSLASH = 0x5c;
const COMMA = 0x2c;
const OPEN_ARRAY = 0x5b;
const CLOSE_ARRAY = 0x5d;
const OPEN_OBJECT = 0x7b;
const CLOSE_OBJECT = 0x7d;

interface TablePlan {
  readonly table: IngestTable;
  /** Whether its rows can be transcoded: no bytea or array column. */
  readonly transcodable: boolean;
  /** Per column: a json/jsonb column, whose values are copied as JSON text. */
  readonly json: readonly boolean[];
  /** Whether any column needs decoding from its wire form on the general path (bytea). */
  readonly decodes: boolean;
}

export class WirePartReader {
  readonly #plans: ReadonlyMap<string, TablePlan>;
  /** Names the batch in errors, e.g. `Stream s, batch 3`. */
  readonly #label: string;

  constructor(tables: readonly IngestTable[], label: string) {
    this.#label = label;
    this.#plans = new Map(
      tables.map((table) => {
        const types = table.columns.map((c) => c.parsedType);
        const json = types.map((t) => t.arrayDimensions === 0 && (t.base === 'json' || t.base === 'jsonb'));
        const transcodable = types.every((t) => t.arrayDimensions === 0 && t.base !== 'bytea');
        const decodes = types.some((t) => t.base === 'bytea');
        return [tableKey(table), { table, transcodable, json, decodes }];
      }),
    );
  }

  /** Rows of the batch read so far: errors name a row by its position in the batch. */
  rowsRead = 0;

  /** The rows of the batch's next part. */
  *rows(part: string): Generator<Row, void> {
    this.rowsRead = yield* this.#rowsOf(part, this.rowsRead);
  }

  *#rowsOf(part: string, rowsBefore: number): Generator<Row, number> {
    let row = rowsBefore;
    if (part.charCodeAt(0) !== OPEN_ARRAY) return yield* this.#generalRows(part, 0, row);
    let i = 1;
    if (part.charCodeAt(i) === CLOSE_ARRAY) return row;
    for (;;) {
      row += 1;
      const fast = this.#transcodeRow(part, i, row);
      let end: number;
      if (fast) {
        yield fast.row;
        end = fast.end;
      } else {
        end = valueEnd(part, i);
        if (end < 0) return yield* this.#generalRows(part, row - rowsBefore - 1, row - 1);
        yield this.#generalRow(JSON.parse(part.slice(i, end)) as WireRow, row);
      }
      const next = part.charCodeAt(end);
      if (next === CLOSE_ARRAY && end === part.length - 1) return row;
      if (next !== COMMA) return yield* this.#generalRows(part, row - rowsBefore, row);
      i = end + 1;
    }
  }

  /** The row starting at `i` as COPY text, or undefined if it needs the general path. */
  #transcodeRow(s: string, start: number, row: number): { row: Row; end: number } | undefined {
    let i = start;
    if (s.charCodeAt(i) !== OPEN_ARRAY || s.charCodeAt(i + 1) !== QUOTE) return undefined;
    const keyEnd = stringEnd(s, i + 1);
    if (keyEnd < 0) return undefined;
    const plan = this.#plan(jsonString(s, i + 1, keyEnd), row);
    if (!plan.transcodable) return undefined;
    i = keyEnd + 1;
    if (s.charCodeAt(i) !== COMMA || s.charCodeAt(i + 1) !== OPEN_ARRAY) return undefined;
    i += 2;
    const json = plan.json;
    let line = '';
    for (let c = 0; c < json.length; c++) {
      if (c > 0) {
        if (s.charCodeAt(i) !== COMMA) return undefined;
        i += 1;
        line += '\t';
      }
      const end = valueEnd(s, i);
      if (end < 0) return undefined;
      const first = s.charCodeAt(i);
      if (first === 0x6e /* n */) line += '\\N';
      else if (json[c])
        line += escapeCopyText(s.slice(i, end)); // backslashes; whitespace, if not compact
      else if (first === QUOTE) {
        const body = s.slice(i + 1, end - 1);
        // A string with an escape is decoded and escaped again for COPY (a rare case; most are plain).
        line += body.includes('\\') ? escapeCopyText(JSON.parse(s.slice(i, end)) as string) : body;
      } else if (first === 0x74 /* t */) line += 't';
      else if (first === 0x66 /* f */) line += 'f';
      else if (first === OPEN_ARRAY || first === OPEN_OBJECT) return undefined;
      else line += s.slice(i, end); // a number
      i = end;
    }
    if (s.charCodeAt(i) !== CLOSE_ARRAY || s.charCodeAt(i + 1) !== CLOSE_ARRAY) return undefined;
    return { row: copyTextRow(plan.table, line), end: i + 2 };
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

/** The index of the closing quote of the JSON string opening at `i`, or -1. */
function stringEnd(s: string, i: number): number {
  let from = i + 1;
  for (;;) {
    const quote = s.indexOf('"', from);
    if (quote < 0) return -1;
    let backslashes = 0;
    while (s.charCodeAt(quote - 1 - backslashes) === BACKSLASH) backslashes += 1;
    if (backslashes % 2 === 0) return quote;
    from = quote + 1;
  }
}

/** The string value of the JSON string between quotes at `open` and `close`. */
function jsonString(s: string, open: number, close: number): string {
  const body = s.slice(open + 1, close);
  return body.includes('\\') ? (JSON.parse(s.slice(open, close + 1)) as string) : body;
}

/**
 * The index just after the compact JSON value starting at `i`, or -1 if there is none there.
 * Containers are matched by counting brackets outside strings; scalars end at `,` `]` `}`.
 */
function valueEnd(s: string, i: number): number {
  const first = s.charCodeAt(i);
  if (first === QUOTE) {
    const end = stringEnd(s, i);
    return end < 0 ? -1 : end + 1;
  }
  if (first === OPEN_ARRAY || first === OPEN_OBJECT) {
    let depth = 0;
    for (let j = i; j < s.length; j++) {
      const c = s.charCodeAt(j);
      if (c === QUOTE) {
        j = stringEnd(s, j);
        if (j < 0) return -1;
      } else if (c === OPEN_ARRAY || c === OPEN_OBJECT) depth += 1;
      else if (c === CLOSE_ARRAY || c === CLOSE_OBJECT) {
        depth -= 1;
        if (depth === 0) return j + 1;
      }
    }
    return -1;
  }
  let j = i;
  while (j < s.length) {
    const c = s.charCodeAt(j);
    if (c === COMMA || c === CLOSE_ARRAY || c === CLOSE_OBJECT) break;
    if (c <= 0x20) return -1; // whitespace: not compact JSON
    j += 1;
  }
  return j > i && isScalar(s.slice(i, j)) ? j : -1;
}

const SCALAR = /^(?:null|true|false|-?\d+(?:\.\d+)?(?:[eE][+-]?\d+)?)$/;

function isScalar(text: string): boolean {
  return SCALAR.test(text);
}
