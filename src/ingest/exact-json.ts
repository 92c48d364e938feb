/**
 * Lossless JSON: parse and write without losing what `JSON.parse`/`JSON.stringify` lose: high
 * watermarks exactly as written, and numbers with all their digits.
 *
 * `JSON.parse` turns every number into a double (`1234567890123456789` comes back as
 * `1234567890123456800`, `1e400` as `Infinity`) and every object into a JavaScript object, which
 * moves integer-like keys (`"10"`) before the others. Node 20 has neither `JSON.rawJSON` nor the
 * reviver's `context.source`, so this module has its own parser (iterative: a value nested
 * 100,000 deep parses without overflowing the stack).
 *
 * Two representations, chosen per use:
 * - **Exact** (`parseExactJson`): objects are `JsonObject`, a `Map` of keys in the order written
 *   (a duplicate key keeps its first place and its last value, as Python's `dict` does); every
 *   number is a `JsonNumber` holding its text as written. Used for the table comment, which is
 *   rewritten byte for byte as Python's `json.dumps` writes it (`pythonJsonDumps`).
 * - **Ordinary JavaScript** (`parseJson`, `toPlainJson`): plain objects and arrays, strings,
 *   booleans, null, and numbers as `number`, or `bigint` for an integer beyond 2^53 that a double
 *   cannot hold. This is what users' `batches()`, `producer.highWatermark()` and `status` get.
 *   `parseJsonKeepingNumbers` is the same but every number is a `JsonNumber`, for readers that
 *   decide per column what a number becomes (the gateway, the NDJSON reader).
 *
 * Writers accept both representations, mixed, plus `bigint` and `Date` (its ISO 8601 string):
 * `pythonJsonDumps` (the comment; a JavaScript `number` is an int when it is a safe integer,
 * else a float in Python's format, so `1e21` reads back as the same double) and `stringifyJson`
 * (as `JSON.stringify`, for Redis, jsonb and the wire).
 * `JsonNumber.toJSON` throws: `JSON.stringify` would otherwise write `{"text": ...}`.
 */

/** A JSON number kept as written, e.g. `1.0`, `1E+2`, `12345678901234567890`. */
export class JsonNumber {
  /** The number's text: JSON number syntax, or Python's `NaN`, `Infinity`, `-Infinity` from a comment. */
  readonly text: string;

  constructor(text: string) {
    if (!parsing && !NUMBER_SYNTAX.test(text) && !NON_FINITE.has(text))
      throw new TypeError(`Not a JSON number: ${JSON.stringify(text)}`);
    this.text = text;
  }

  /** Whether it is written as an integer (no fraction, no exponent): Python reads it as an `int`. */
  get isInteger(): boolean {
    return INTEGER_SYNTAX.test(this.text);
  }

  /** As ordinary JavaScript: a `bigint` for an integer a double cannot hold exactly, else a `number`. */
  toValue(): number | bigint {
    if (!this.isInteger) return this.text === 'NaN' ? Number.NaN : Number(this.text);
    const n = Number(this.text);
    if (Object.is(n, -0)) return 0; // an integer -0 is 0, as in Python
    return Number.isSafeInteger(n) ? n : BigInt(this.text);
  }

  toJSON(): never {
    throw new TypeError(
      `JSON.stringify would lose the digits of the JSON number ${this.text}: write it with stringifyJson (src/ingest/exact-json.ts)`,
    );
  }
}

/** A JSON object with its keys in the order written (integer-like keys included). */
export class JsonObject extends Map<string, ExactJson> {}

export type ExactJson = null | boolean | string | JsonNumber | ExactJson[] | JsonObject;

const NUMBER_SYNTAX = /^-?(?:0|[1-9]\d*)(?:\.\d+)?(?:[eE][+-]?\d+)?$/;
const INTEGER_SYNTAX = /^-?(?:0|[1-9]\d*)$/;
const NON_FINITE = new Set(['NaN', 'Infinity', '-Infinity']);
const NUMBER_TOKEN = /-?(?:0|[1-9]\d*)(?:\.\d+)?(?:[eE][+-]?\d+)?/y;
/** Set while the parser makes a JsonNumber of a token it has already matched: no second check. */
let parsing = false;

interface ParseMode {
  /** Objects as `JsonObject` (key order kept) or plain objects. */
  readonly ordered: boolean;
  /** Numbers as `JsonNumber` or as number/bigint. */
  readonly exactNumbers: boolean;
  /** Accept Python's `NaN`, `Infinity` and `-Infinity`, as its `json.loads` does. */
  readonly pythonLiterals: boolean;
}

/** JSON text as `JsonObject`s and `JsonNumber`s; `pythonLiterals` also reads `NaN`/`Infinity` as Python does. */
export function parseExactJson(text: string, options: { pythonLiterals?: boolean } = {}): ExactJson {
  return parse(text, {
    ordered: true,
    exactNumbers: true,
    pythonLiterals: options.pythonLiterals ?? false,
  }) as ExactJson;
}

/** JSON text as ordinary JavaScript: as `JSON.parse`, but an unsafe integer is a `bigint`. */
export function parseJson(text: string): unknown {
  return parse(text, { ordered: false, exactNumbers: false, pythonLiterals: false });
}

/** JSON text with plain objects and arrays, and every number a `JsonNumber`. */
export function parseJsonKeepingNumbers(text: string): unknown {
  return parse(text, { ordered: false, exactNumbers: true, pythonLiterals: false });
}

/** An exact value as ordinary JavaScript (see the module header). */
export function toPlainJson(value: unknown): unknown {
  if (value instanceof JsonNumber) return value.toValue();
  if (value instanceof JsonObject) {
    const object: Record<string, unknown> = {};
    for (const [key, item] of value) setProperty(object, key, toPlainJson(item));
    return object;
  }
  if (Array.isArray(value)) return value.map(toPlainJson);
  if (value !== null && typeof value === 'object' && isPlainObject(value)) {
    const object: Record<string, unknown> = {};
    for (const [key, item] of Object.entries(value)) setProperty(object, key, toPlainJson(item));
    return object;
  }
  return value;
}

function isPlainObject(value: object): boolean {
  const proto = Object.getPrototypeOf(value);
  return proto === Object.prototype || proto === null;
}

/** `object[key] = value`, also for `__proto__`, which plain assignment would take as the prototype. */
function setProperty(object: Record<string, unknown>, key: string, value: unknown): void {
  if (key === '__proto__')
    Object.defineProperty(object, key, { value, enumerable: true, writable: true, configurable: true });
  else object[key] = value;
}

// ---------------------------------------------------------------------------------------------
// Writing

/** `json.dumps(value)` byte for byte as Python writes it: `", "`/`": "` separators, `ensure_ascii`. */
export function pythonJsonDumps(value: unknown): string {
  return write(value, { python: true, bigintAsString: false }, '', '');
}

export interface StringifyOptions {
  /** Spaces per level, as `JSON.stringify`'s third argument. @default 0 (compact) */
  readonly indent?: number;
  /** Write bigints as strings (as ingest() writes them into json columns). @default false: as integers */
  readonly bigintAsString?: boolean;
}

/**
 * JSON as `JSON.stringify(value, null, indent)` writes it, plus `JsonNumber`s with their digits,
 * bigints as integers and `JsonObject` key order. As `JSON.stringify`, object properties that
 * are undefined or functions are left out and `toJSON` is called (checking for such values
 * first is storable-json.ts's job).
 */
export function stringifyJson(value: unknown, options: StringifyOptions = {}): string {
  const style = { python: false, bigintAsString: options.bigintAsString ?? false };
  return write(value, style, ' '.repeat(options.indent ?? 0), '\n');
}

interface Style {
  readonly python: boolean;
  readonly bigintAsString: boolean;
}

function write(value: unknown, style: Style, indent: string, newline: string): string {
  const python = style.python;
  if (value === null) return 'null';
  switch (typeof value) {
    case 'string':
      return python ? asciiJsonString(value) : JSON.stringify(value);
    case 'boolean':
      return value ? 'true' : 'false';
    case 'bigint':
      return style.bigintAsString ? `"${value}"` : value.toString();
    case 'number':
      return numberText(value, python);
    case 'object':
      return writeObject(value, style, indent, newline);
    default:
      throw new TypeError(`Not a JSON value: a ${typeof value}`);
  }
}

function writeObject(value: object, style: Style, indent: string, newline: string): string {
  const python = style.python;
  if (value instanceof JsonNumber) return exactNumberText(value, python);
  if (value instanceof Date) return write(value.toISOString(), style, indent, newline);
  const toJSON = (value as { toJSON?: unknown }).toJSON;
  if (typeof toJSON === 'function') return write(toJSON.call(value), style, indent, newline);
  const inner = indent === '' ? '' : newline + indent;
  const comma = python ? ', ' : indent === '' ? ',' : `,${inner}`;
  const colon = python || indent !== '' ? ': ' : ':';
  const nested = (v: unknown) => write(v, style, indent, inner || newline);
  const wrap = (open: string, items: string[], close: string) =>
    items.length === 0 ? `${open}${close}` : `${open}${inner}${items.join(comma)}${inner && newline}${close}`;
  if (Array.isArray(value))
    return wrap(
      '[',
      value.map((v) => (isSkipped(v) ? 'null' : nested(v))),
      ']',
    );
  const entries = value instanceof JsonObject ? [...value] : Object.entries(value);
  const key = (k: string) => (python ? asciiJsonString(k) : JSON.stringify(k));
  const items = entries.filter(([, v]) => !isSkipped(v)).map(([k, v]) => `${key(k)}${colon}${nested(v)}`);
  return wrap('{', items, '}');
}

/** What `JSON.stringify` leaves out of objects (and writes as null in arrays). */
function isSkipped(value: unknown): boolean {
  return value === undefined || typeof value === 'function' || typeof value === 'symbol';
}

/**
 * A JavaScript number. For Python: an integer if it is a safe one, else a float as Python
 * formats it (so `1e21` reads back as the same double, not as an int). Otherwise as
 * `JSON.stringify` writes it.
 */
function numberText(value: number, python: boolean): string {
  if (python)
    return Number.isSafeInteger(value) && !Object.is(value, -0) ? String(value) : pythonFloat(value);
  if (!Number.isFinite(value)) throw new TypeError(`JSON cannot hold ${value}`);
  return JSON.stringify(value);
}

/** As Python reads and writes it: an integer exactly (`-0` is `0`), any other number as its float. */
function exactNumberText(value: JsonNumber, python: boolean): string {
  if (value.isInteger) return BigInt(value.text).toString();
  if (!python) {
    if (NON_FINITE.has(value.text)) throw new TypeError(`JSON cannot hold ${value.text}`);
    return value.text;
  }
  return pythonFloat(value.text === 'NaN' ? Number.NaN : Number(value.text));
}

/**
 * `repr(float)`: the shortest digits that read back as the same double (what JavaScript's
 * `toExponential()` gives), in fixed notation when the decimal point falls within -4 < p <= 16
 * and always with a fraction (`1.0`), else in exponent notation with a sign and at least two
 * exponent digits (`1e+16`, `1e-07`, `2.5e-05`).
 */
export function pythonFloat(value: number): string {
  if (Number.isNaN(value)) return 'NaN';
  if (value === Number.POSITIVE_INFINITY) return 'Infinity';
  if (value === Number.NEGATIVE_INFINITY) return '-Infinity';
  if (value === 0) return Object.is(value, -0) ? '-0.0' : '0.0';
  const sign = value < 0 ? '-' : '';
  const [mantissa = '', exponentText = '0'] = Math.abs(value).toExponential().split('e');
  const digits = mantissa.replace('.', '');
  const exponent = Number(exponentText);
  const point = exponent + 1; // digits are 0.d1d2... × 10^point
  if (point > -4 && point <= 16) {
    if (point <= 0) return `${sign}0.${'0'.repeat(-point)}${digits}`;
    if (point >= digits.length) return `${sign}${digits}${'0'.repeat(point - digits.length)}.0`;
    return `${sign}${digits.slice(0, point)}.${digits.slice(point)}`;
  }
  const fraction = digits.length > 1 ? `.${digits.slice(1)}` : '';
  const magnitude = String(Math.abs(exponent)).padStart(2, '0');
  return `${sign}${digits[0]}${fraction}e${exponent < 0 ? '-' : '+'}${magnitude}`;
}

/** Python's `ensure_ascii`: everything outside printable ASCII as `\uXXXX` (lower-case hex). */
function asciiJsonString(text: string): string {
  // JSON.stringify already writes control characters as \u00XX (or \b \f \n \r \t, as Python)
  // and lone surrogates as \udXXX; what is left is every character from U+007F up.
  return JSON.stringify(text).replace(
    /[\u007f-\uffff]/g,
    (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`,
  );
}

// ---------------------------------------------------------------------------------------------
// Parsing

/** Where a value being parsed goes: an array being filled, or an object waiting for a key's value. */
interface Container {
  readonly value: unknown[] | JsonObject | Record<string, unknown>;
  key: string | undefined;
}

function parse(text: string, mode: ParseMode): unknown {
  const reader = new Reader(text, mode);
  const stack: Container[] = [];
  let result: unknown;
  for (;;) {
    reader.skipSpace();
    let value: unknown;
    const c = text.charCodeAt(reader.at);
    if (c === 0x7b /* { */ || c === 0x5b /* [ */) {
      reader.at += 1;
      const container: Container = {
        value: c === 0x5b ? [] : mode.ordered ? new JsonObject() : {},
        key: undefined,
      };
      reader.skipSpace();
      const close = text.charCodeAt(reader.at);
      if (close === (c === 0x5b ? 0x5d : 0x7d)) {
        reader.at += 1;
        value = container.value;
      } else {
        stack.push(container);
        if (c === 0x7b) container.key = reader.key();
        continue;
      }
    } else {
      value = reader.scalar();
    }
    // Attach the value, then close every container it completes.
    for (;;) {
      const top = stack[stack.length - 1];
      if (top === undefined) {
        result = value;
        reader.skipSpace();
        if (reader.at !== text.length) throw reader.unexpected();
        return result;
      }
      if (Array.isArray(top.value)) top.value.push(value);
      else if (top.value instanceof JsonObject) top.value.set(top.key as string, value as ExactJson);
      else setProperty(top.value, top.key as string, value);
      reader.skipSpace();
      const next = text.charCodeAt(reader.at);
      reader.at += 1;
      if (next === 0x2c /* , */) {
        if (!Array.isArray(top.value)) top.key = reader.key();
        break;
      }
      if (next !== (Array.isArray(top.value) ? 0x5d : 0x7d)) {
        reader.at -= 1;
        throw reader.unexpected();
      }
      stack.pop();
      value = top.value;
    }
  }
}

class Reader {
  at = 0;
  readonly #text: string;
  readonly #mode: ParseMode;

  constructor(text: string, mode: ParseMode) {
    this.#text = text;
    this.#mode = mode;
  }

  skipSpace(): void {
    const text = this.#text;
    let c = text.charCodeAt(this.at);
    while (c === 0x20 || c === 0x0a || c === 0x0d || c === 0x09) c = text.charCodeAt(++this.at);
  }

  /** An object key and its colon. */
  key(): string {
    this.skipSpace();
    if (this.#text.charCodeAt(this.at) !== 0x22) throw this.unexpected('a string key');
    const key = this.string();
    this.skipSpace();
    if (this.#text.charCodeAt(this.at) !== 0x3a /* : */) throw this.unexpected("':'");
    this.at += 1;
    return key;
  }

  scalar(): unknown {
    const text = this.#text;
    const c = text.charCodeAt(this.at);
    if (c === 0x22) return this.string();
    if (c === 0x2d || (c >= 0x30 && c <= 0x39)) {
      if (this.#mode.pythonLiterals && text.startsWith('-Infinity', this.at))
        return this.literal('-Infinity');
      NUMBER_TOKEN.lastIndex = this.at;
      const match = NUMBER_TOKEN.exec(text);
      if (match === null) throw this.unexpected('a number');
      this.at += match[0].length;
      return this.number(match[0]);
    }
    for (const word of ['true', 'false', 'null'] as const) {
      if (text.startsWith(word, this.at)) {
        this.at += word.length;
        return word === 'null' ? null : word === 'true';
      }
    }
    if (this.#mode.pythonLiterals) {
      if (text.startsWith('NaN', this.at)) return this.literal('NaN');
      if (text.startsWith('Infinity', this.at)) return this.literal('Infinity');
    }
    throw this.unexpected('a JSON value');
  }

  literal(word: string): unknown {
    this.at += word.length;
    return this.number(word);
  }

  number(token: string): unknown {
    parsing = true;
    const number = new JsonNumber(token);
    parsing = false;
    return this.#mode.exactNumbers ? number : number.toValue();
  }

  string(): string {
    const text = this.#text;
    const start = this.at + 1;
    // Fast path: no escape or control character before the next quote (native scans).
    const quote = text.indexOf('"', start);
    if (quote >= 0) {
      const candidate = text.slice(start, quote);
      if (!NEEDS_DECODING.test(candidate)) {
        this.at = quote + 1;
        return candidate;
      }
    }
    let i = start;
    let out = '';
    for (;;) {
      const c = text.charCodeAt(i);
      if (Number.isNaN(c)) {
        this.at = i;
        throw this.unexpected('the end of a string');
      }
      if (c < 0x20) {
        this.at = i;
        throw this.unexpected('an escaped control character');
      }
      if (c === 0x22) {
        this.at = i + 1;
        return out;
      }
      if (c !== 0x5c) {
        out += text[i];
        i += 1;
        continue;
      }
      const e = text[i + 1];
      const simple = e === undefined ? undefined : ESCAPES[e];
      if (simple !== undefined) {
        out += simple;
        i += 2;
      } else if (e === 'u' && /^[0-9a-fA-F]{4}$/.test(text.slice(i + 2, i + 6))) {
        out += String.fromCharCode(Number.parseInt(text.slice(i + 2, i + 6), 16));
        i += 6;
      } else {
        this.at = i;
        throw this.unexpected('a valid escape');
      }
    }
  }

  unexpected(expected?: string): SyntaxError {
    const found = this.#text[this.at];
    const what = found === undefined ? 'end of input' : `${JSON.stringify(found)}`;
    return new SyntaxError(
      `Unexpected ${what} at position ${this.at}${expected ? ` (expected ${expected})` : ''}`,
    );
  }
}

// biome-ignore lint/suspicious/noControlCharactersInRegex: control characters are what it finds
const NEEDS_DECODING = /[\\\u0000-\u001f]/;

const ESCAPES: Readonly<Record<string, string>> = {
  '"': '"',
  '\\': '\\',
  '/': '/',
  b: '\b',
  f: '\f',
  n: '\n',
  r: '\r',
  t: '\t',
};
