/**
 * A batch's JSON body, split without building its rows: the envelope (everything but `rows`) is
 * parsed as usual, and the rows are found as byte ranges and parsed one at a time when needed.
 *
 * Why: `JSON.parse` of a 64 MiB body of small rows builds millions of arrays and strings, ten to
 * fifty times the body's size (one body took the gateway to 2.8 GB RSS, three killed it). Here a
 * body costs its own bytes plus one row at a time.
 *
 * The scanner is a loop with a depth counter, not a recursive descent, so no nesting can
 * overflow its stack; and it refuses nesting deeper than MAX_BODY_DEPTH, so nothing downstream
 * (zod's schema of JSON values, the Producer, the worker) is handed a value it would have to
 * recurse into 2,500 levels deep. It only finds structure: every byte it accepts is also checked
 * by JSON.parse (the envelope, each row) or by the loop itself (the commas between rows), so it
 * accepts exactly the valid JSON that JSON.parse accepts.
 */
import { parseJsonKeepingNumbers } from '../ingest/exact-json.ts';
import {
  BACKSLASH,
  CLOSE_ARRAY,
  CLOSE_OBJECT,
  COLON,
  COMMA,
  OPEN_ARRAY,
  OPEN_OBJECT,
  QUOTE,
} from '../queue/json-chars.ts';
import { HttpError } from './http-error.ts';

/** Deepest nesting of arrays and objects in a body (the body's own object is level 1). */
export const MAX_BODY_DEPTH = 512;
/** Largest envelope (the body without its rows): table definitions, watermark and metadata are small. */
export const MAX_ENVELOPE_BYTES = 1024 * 1024;

export interface SplitBody {
  /** The body parsed with `rows` replaced by `[]` (or absent, or not an array: left as sent). */
  readonly envelope: unknown;
  /** Byte range of the `rows` array, `[` to `]` inclusive; null when the body has no rows array. */
  readonly rows: { readonly start: number; readonly end: number } | null;
}

/** Splits a body; throws HttpError 400 (not JSON, nested too deep) or 413 (envelope too large). */
export function splitBatchBody(body: Buffer, label: string): SplitBody {
  const scanner = new Scanner(body, label);
  const rows = scanner.topLevelRows();
  const envelopeBytes = rows ? body.length - (rows.end - rows.start) + 2 : body.length;
  if (envelopeBytes > MAX_ENVELOPE_BYTES) {
    throw new HttpError(
      413,
      'BODY_TOO_LARGE',
      `${label}: everything but the rows (tables, highWatermark, metadata) takes ${envelopeBytes} bytes; the gateway accepts at most ${MAX_ENVELOPE_BYTES}`,
    );
  }
  const text = rows
    ? `${body.toString('utf8', 0, rows.start)}[]${body.toString('utf8', rows.end)}`
    : body.toString('utf8');
  return { envelope: parseJson(text, label, 'the body'), rows };
}

/**
 * Each row of the `rows` array at `range`, parsed: `[index, row]`, index 0-based. Throws
 * HttpError 400 when the array itself is malformed (a missing comma) or a row is not JSON, 413
 * when a row's JSON is over `maxRowBytes`: parsed and encoded, a row takes up to twenty times its
 * size (a 60 MiB jsonb array of small numbers took the gateway from 125 MiB to 1.26 GB RSS).
 */
export function* bodyRows(
  body: Buffer,
  range: { readonly start: number; readonly end: number },
  label: string,
  maxRowBytes: number,
): Generator<[number, unknown]> {
  const scanner = new Scanner(body, label);
  let i = scanner.skipSpace(range.start + 1);
  if (body[i] === CLOSE_ARRAY) return;
  for (let index = 0; ; index++) {
    const end = scanner.valueEnd(i, 2);
    if (end - i > maxRowBytes) {
      throw new HttpError(
        413,
        'ROW_TOO_LARGE',
        `${label}, row ${index + 1}: takes ${end - i} bytes of JSON; the gateway accepts rows of at most ${maxRowBytes} (GATEWAY_MAX_ROW_BYTES)`,
      );
    }
    yield [index, parseJson(body.toString('utf8', i, end), label, `row ${index + 1}`)];
    i = scanner.skipSpace(end);
    if (body[i] === CLOSE_ARRAY) return;
    scanner.expect(i, COMMA, "',' or ']' after a row");
    i = scanner.skipSpace(i + 1);
  }
}

function parseJson(text: string, label: string, what: string): unknown {
  try {
    // Lossless: each number keeps its digits until its column decides (wire-numbers.ts).
    return parseJsonKeepingNumbers(text);
  } catch (error) {
    throw new HttpError(
      400,
      'INVALID_BATCH_JOB',
      `${label}: the body is not valid JSON (${what}): ${(error as Error).message}`,
    );
  }
}

class Scanner {
  readonly #s: Buffer;
  readonly #label: string;

  constructor(body: Buffer, label: string) {
    this.#s = body;
    this.#label = label;
  }

  /** The `rows` member of the body's top-level object, if it is an array. */
  topLevelRows(): { start: number; end: number } | null {
    const s = this.#s;
    let rows: { start: number; end: number } | null = null;
    let seenRows = false;
    let i = this.skipSpace(0);
    this.expect(i, OPEN_OBJECT, 'a JSON object');
    i = this.skipSpace(i + 1);
    if (s[i] !== CLOSE_OBJECT) {
      for (;;) {
        this.expect(i, QUOTE, 'a member name');
        const keyEnd = this.stringEnd(i);
        const key = parseJson(s.toString('utf8', i, keyEnd), this.#label, 'a member name');
        i = this.skipSpace(keyEnd);
        this.expect(i, COLON, "':'");
        const start = this.skipSpace(i + 1);
        const end = this.valueEnd(start, 1);
        if (key === 'rows') {
          // JSON.parse keeps the last of two equal names; the envelope would keep the other one.
          if (seenRows) this.fail(start, 'the body has "rows" twice');
          seenRows = true;
          if (s[start] === OPEN_ARRAY) rows = { start, end };
        }
        i = this.skipSpace(end);
        if (s[i] === CLOSE_OBJECT) break;
        this.expect(i, COMMA, "',' or '}'");
        i = this.skipSpace(i + 1);
      }
    }
    if (this.skipSpace(i + 1) !== s.length) this.fail(i + 1, 'the body goes on after its object');
    return rows;
  }

  /** Index just after the value starting at `i`, inside `depth` levels of nesting. */
  valueEnd(i: number, depth: number): number {
    const s = this.#s;
    const first = s[i];
    if (first === QUOTE) return this.stringEnd(i);
    if (first !== OPEN_ARRAY && first !== OPEN_OBJECT) return this.scalarEnd(i);
    let level = 0;
    for (let j = i; j < s.length; j++) {
      const c = s[j];
      if (c === QUOTE) j = this.stringEnd(j) - 1;
      else if (c === OPEN_ARRAY || c === OPEN_OBJECT) {
        level += 1;
        if (depth + level > MAX_BODY_DEPTH) {
          throw new HttpError(
            400,
            'INVALID_BATCH_JOB',
            `${this.#label}: the body nests arrays and objects deeper than ${MAX_BODY_DEPTH} levels (at byte ${j})`,
          );
        }
      } else if (c === CLOSE_ARRAY || c === CLOSE_OBJECT) {
        level -= 1;
        if (level === 0) return j + 1;
      }
    }
    return this.fail(s.length, 'the body ends inside an array or object');
  }

  /** Index just after the string whose opening quote is at `i`. */
  stringEnd(i: number): number {
    const s = this.#s;
    for (let quote = s.indexOf(QUOTE, i + 1); quote >= 0; quote = s.indexOf(QUOTE, quote + 1)) {
      let backslashes = 0;
      while (s[quote - 1 - backslashes] === BACKSLASH) backslashes += 1;
      if (backslashes % 2 === 0) return quote + 1;
    }
    return this.fail(s.length, 'the body ends inside a string');
  }

  /** Index just after a number or literal: the next delimiter (JSON.parse checks the text). */
  scalarEnd(i: number): number {
    const s = this.#s;
    let j = i;
    for (; j < s.length; j++) {
      const c = s[j] as number;
      if (c === COMMA || c === CLOSE_ARRAY || c === CLOSE_OBJECT || isSpace(c)) break;
    }
    if (j === i) this.fail(i, 'a value');
    return j;
  }

  skipSpace(i: number): number {
    let j = i;
    while (j < this.#s.length && isSpace(this.#s[j] as number)) j++;
    return j;
  }

  expect(i: number, byte: number, what: string): void {
    if (this.#s[i] !== byte) this.fail(i, `expected ${what}`);
  }

  fail(at: number, what: string): never {
    throw new HttpError(
      400,
      'INVALID_BATCH_JOB',
      `${this.#label}: the body is not valid JSON: ${what} at byte ${at} of ${this.#s.length}`,
    );
  }
}

/** JSON's four whitespace bytes. */
function isSpace(c: number): boolean {
  return c === 0x20 || c === 0x0a || c === 0x0d || c === 0x09;
}
