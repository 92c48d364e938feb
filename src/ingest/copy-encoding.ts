/**
 * Turns JavaScript values into PostgreSQL's COPY text format, one encoder per column chosen
 * once from the column's type, so the per-row work is a few function calls and string joins.
 *
 * COPY text format: columns separated by tab, rows by newline, NULL as `\N`; a backslash,
 * tab, newline or carriage return inside a value is written as `\\`, `\t`, `\n`, `\r`.
 */
import type { ColumnDefinition } from './table-definition.ts';
import { jsonTextMayHoldBadString, jsonValueProblem, stringProblem } from './text-rules.ts';

/** Thrown by an encoder; the caller adds the table, row and column. */
export class ValueEncodingError extends Error {}

export type ValueEncoder = (value: unknown) => string;

const NULL = '\\N';
const NEEDS_ESCAPE = /[\\\n\r\t]/;

export function escapeCopyText(text: string): string {
  if (!NEEDS_ESCAPE.test(text)) return text;
  let out = '';
  for (const char of text) {
    if (char === '\\') out += '\\\\';
    else if (char === '\n') out += '\\n';
    else if (char === '\r') out += '\\r';
    else if (char === '\t') out += '\\t';
    else out += char;
  }
  return out;
}

/** The encoder for one column. Values are checked as far as JavaScript can; PostgreSQL does the rest. */
export function encoderFor(column: ColumnDefinition): ValueEncoder {
  const { base, arrayDimensions } = column.parsedType;
  const element = elementEncoder(base);
  if (arrayDimensions > 0) {
    return (value) => {
      if (value === null || value === undefined) return NULL;
      if (!Array.isArray(value))
        throw new ValueEncodingError(`expected an array for type ${column.type}, got ${describe(value)}`);
      return escapeCopyText(arrayLiteral(value, element));
    };
  }
  // COPY escaping only where the text can need it (a regular expression test per value adds up):
  if (element === encodeJson || element === encodeJsonb) {
    // JSON.stringify writes tabs, newlines and carriage returns as \t, \n, \r: only backslashes are left.
    return (value) => (value === null || value === undefined ? NULL : doubleBackslashes(element(value)));
  }
  if (element === encodeBytea) {
    return (value) => (value === null || value === undefined ? NULL : escapeCopyText(encodeBytea(value)));
  }
  // Numbers, booleans and dates never hold a character COPY escapes: only strings are checked.
  return (value) =>
    value === null || value === undefined
      ? NULL
      : typeof value === 'string'
        ? escapeCopyText(checkedText(value))
        : element(value);
}

/**
 * A string PostgreSQL can store: no NUL, no lone surrogate (which would become U+FFFD on the way,
 * silently). The queue refuses the same strings (text-rules.ts), so both store the same values.
 */
function checkedText(text: string): string {
  const problem = stringProblem(text);
  if (problem !== undefined) throw new ValueEncodingError(problem);
  return text;
}

function doubleBackslashes(text: string): string {
  return text.includes('\\') ? text.replaceAll('\\', '\\\\') : text;
}

/** Any value but null and undefined (encoders never see those: they are `\N`). */
type Present = NonNullable<unknown>;

/** Encodes one non-null value to its PostgreSQL text form (not yet COPY-escaped). */
type ElementEncoder = (value: Present) => string;

function elementEncoder(base: string): ElementEncoder {
  if (base === 'json') return encodeJson;
  if (base === 'jsonb') return encodeJsonb;
  if (base === 'bytea') return encodeBytea;
  if (base === 'bool' || base === 'boolean') return encodeBoolean;
  return encodeScalar;
}

function encodeJson(value: Present): string {
  // NaN, Infinity, Buffers, Maps, ...: refused, not written as JSON.stringify would (null, {...}).
  const problem = jsonValueProblem(value, false);
  if (problem !== undefined) throw new ValueEncodingError(problem);
  let json: string | undefined;
  try {
    json = JSON.stringify(value);
  } catch {
    // Only a value holding a BigInt (or a cycle, which fails again) gets here: a replacer makes
    // JSON.stringify several times slower, so it is used only when needed.
    json = JSON.stringify(value, bigintAsString);
  }
  if (json === undefined) throw new ValueEncodingError(`cannot be encoded as JSON: ${describe(value)}`);
  return json;
}

/** jsonb also refuses NUL and lone surrogates in its strings (json keeps them as escapes). */
function encodeJsonb(value: Present): string {
  const json = encodeJson(value);
  if (jsonTextMayHoldBadString(json)) {
    const problem = jsonValueProblem(value, true);
    if (problem !== undefined) throw new ValueEncodingError(problem);
  }
  return json;
}

function bigintAsString(_key: string, v: unknown): unknown {
  return typeof v === 'bigint' ? v.toString() : v;
}

function encodeBytea(value: Present): string {
  if (value instanceof Uint8Array)
    return `\\x${Buffer.from(value.buffer, value.byteOffset, value.byteLength).toString('hex')}`;
  if (typeof value === 'string') return value; // already PostgreSQL bytea text, e.g. `\x0102`
  throw new ValueEncodingError(`expected a Buffer or Uint8Array for bytea, got ${describe(value)}`);
}

function encodeBoolean(value: Present): string {
  if (value === true) return 't';
  if (value === false) return 'f';
  return encodeScalar(value);
}

function encodeScalar(value: Present): string {
  switch (typeof value) {
    case 'string':
      return checkedText(value);
    case 'number':
    case 'bigint':
      return String(value);
    case 'boolean':
      return value ? 't' : 'f';
    default:
      if (value instanceof Date) {
        if (Number.isNaN(value.getTime())) throw new ValueEncodingError('is an invalid Date');
        return isoString(value);
      }
      throw new ValueEncodingError(
        `cannot be written to this column: ${describe(value)} (only json/jsonb columns take objects)`,
      );
  }
}

/**
 * A Date as PostgreSQL reads it: `date.toISOString()`, written out here for years 1000 to 9999
 * (several times faster than V8's). Other years are written as PostgreSQL takes them, not as
 * toISOString does (`+012000-01-01T...`, `-000001-...`, which PostgreSQL refuses): `12000-01-01T...Z`
 * and `0002-01-01T...Z BC` for the year -1 (1 BC is the year 0).
 */
export function isoString(date: Date): string {
  const year = date.getUTCFullYear();
  if (year < 1000 || year > 9999) return otherYearIsoString(date, year);
  return `${year}-${two(date.getUTCMonth() + 1)}-${two(date.getUTCDate())}T${two(date.getUTCHours())}:${two(date.getUTCMinutes())}:${two(date.getUTCSeconds())}.${three(date.getUTCMilliseconds())}Z`;
}

function otherYearIsoString(date: Date, year: number): string {
  const iso = date.toISOString(); // ±YYYYYY-MM-DDTHH:MM:SS.sssZ or YYYY-...
  const rest = iso.slice(iso.indexOf('-', 1));
  if (year > 0) return `${String(year).padStart(4, '0')}${rest}`;
  return `${String(1 - year).padStart(4, '0')}${rest} BC`;
}

function two(n: number): string {
  return n < 10 ? `0${n}` : `${n}`;
}

function three(n: number): string {
  return n < 10 ? `00${n}` : n < 100 ? `0${n}` : `${n}`;
}

/** A PostgreSQL array literal; every element double-quoted so no element text can break it. */
function arrayLiteral(items: readonly unknown[], element: ElementEncoder): string {
  const parts = items.map((item) => {
    if (item === null || item === undefined) return 'NULL';
    if (Array.isArray(item)) return arrayLiteral(item, element);
    return `"${element(item).replace(/[\\"]/g, '\\$&')}"`;
  });
  return `{${parts.join(',')}}`;
}

function describe(value: unknown): string {
  if (value instanceof Uint8Array) return 'a Buffer';
  if (Array.isArray(value)) return 'an array';
  if (value instanceof Date) return 'a Date';
  if (typeof value === 'object') return 'an object';
  const text = typeof value === 'string' ? JSON.stringify(value) : String(value);
  return `${typeof value} ${text.length > 40 ? `${text.slice(0, 40)}…` : text}`;
}
