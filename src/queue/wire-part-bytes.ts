/**
 * The fast path of a part whose rows are all of one table: its UTF-8 JSON bytes, as the Producer
 * stored them, straight into the UTF-8 bytes of COPY text lines, with no string decoded or
 * encoded and nothing built per row or field. Most parts of most batches take it. Decoding the
 * part into a string, cutting it into fields and encoding the lines back into bytes (the row
 * path) costs about four times as much: with this path the worker's CPU in `npm run bench`
 * (queue-1-worker) went from 4.0 to 2.6 s per million rows.
 *
 * A field's COPY text is its JSON text, changed only where the two differ: `,` between values
 * becomes a tab, `null` `\N`, `true`/`false` `t`/`f` (in a json column they stay), a string
 * loses its quotes (a json value keeps them) and has its escapes written as the row path writes
 * the characters they stand for (ESCAPES), and a json value's backslashes are doubled (COPY undoes
 * that). It takes only JSON as JSON.stringify writes it: anything else (a row of another table, a
 * `\u` escape or one JSON does not have, whitespace between values, a number JSON would not
 * write, bytes that are not UTF-8, a value of the wrong shape) makes it give up (undefined), and
 * the whole part then takes the row path (wire-part.ts), which decodes or refuses every case and
 * gives the same COPY text for what it takes.
 */
import { isUtf8 } from 'node:buffer';
import { BACKSLASH, CLOSE_ARRAY, CLOSE_OBJECT, COMMA, OPEN_ARRAY, OPEN_OBJECT, QUOTE } from './json-chars.ts';

const TAB = 0x09;
const NEWLINE = 0x0a;
const CARRIAGE_RETURN = 0x0d;
const SPACE = 0x20;
const SLASH = 0x2f;
const LETTER_N = 0x4e;
const LOWER_T = 0x74;
const LOWER_F = 0x66;
const LOWER_N = 0x6e;

/**
 * The COPY text of each JSON escape in a string, by the byte after the backslash: the decoded
 * character as the row path writes it, COPY-escaped where it must be (backslash, \n, \r, \t).
 */
const ESCAPES = new Map<number, Uint8Array>([
  [QUOTE, Buffer.from('"')],
  [SLASH, Buffer.from('/')],
  [BACKSLASH, Buffer.from('\\\\')],
  [0x6e, Buffer.from('\\n')], // n
  [0x72, Buffer.from('\\r')], // r
  [0x74, Buffer.from('\\t')], // t
  [0x62, Buffer.from([0x08])], // b: a backspace, which COPY takes as it is
  [0x66, Buffer.from([0x0c])], // f: a form feed, likewise
]);

const NULL = Buffer.from('null');
const TRUE = Buffer.from('true');
const FALSE = Buffer.from('false');

/** What the fast path needs to know of the table: its name as JSON text, and its json columns. */
export interface PartLayout {
  /** `"schema.table"`, the JSON text every row starts with after its `[`, as UTF-8. */
  readonly keyJson: Uint8Array;
  /** Per column: a json/jsonb column (its values are copied as JSON text). */
  readonly json: readonly boolean[];
}

/** A part's COPY text: its lines, `rows` of them. */
export interface PartCopyText {
  readonly bytes: Buffer;
  readonly rows: number;
}

/**
 * The COPY lines of `part`, each prefixed with its ordinal (`firstOrdinal`, +1 per row) when
 * given; or undefined when a row needs the general path.
 */
export function partCopyText(
  part: Uint8Array,
  layout: PartLayout,
  firstOrdinal: number | undefined,
): PartCopyText | undefined {
  const s = part;
  const end = s.length;
  if (end < 2 || s[0] !== OPEN_ARRAY) return undefined;
  // Bytes that are not UTF-8 go to the row path, which refuses them (COPY would too, but later).
  if (!isUtf8(s)) return undefined;
  if (s[1] === CLOSE_ARRAY) return end === 2 ? { bytes: Buffer.alloc(0), rows: 0 } : undefined;
  const { keyJson, json } = layout;
  // Lines are mostly shorter than their JSON; the buffer grows if they are not.
  let out: Buffer = Buffer.allocUnsafe(end + 256);
  let o = 0;
  let rows = 0;
  let i = 1;
  for (;;) {
    // The row's ordinal and a tab: the staging table's first column.
    if (firstOrdinal !== undefined) {
      const digits = String(firstOrdinal + rows);
      if (o + digits.length + 1 > out.length) out = grown(out, o, digits.length + 1);
      for (let k = 0; k < digits.length; k++) out[o++] = digits.charCodeAt(k);
      out[o++] = TAB;
    }
    // `["schema.table",[`
    if (s[i] !== OPEN_ARRAY) return undefined;
    i += 1;
    for (let k = 0; k < keyJson.length; k++, i++) if (s[i] !== keyJson[k]) return undefined;
    if (s[i] !== COMMA || s[i + 1] !== OPEN_ARRAY) return undefined;
    i += 2;
    for (let c = 0; c < json.length; c++) {
      if (c > 0) {
        if (s[i] !== COMMA) return undefined;
        i += 1;
        if (o + 1 > out.length) out = grown(out, o, 1);
        out[o++] = TAB;
      }
      const first = s[i];
      if (json[c] === true && (first === OPEN_OBJECT || first === OPEN_ARRAY || first === QUOTE)) {
        // JSON text as it is, backslashes doubled; one pass finds its end and copies it.
        let depth = 0;
        let inString = false;
        for (;;) {
          if (i >= end) return undefined;
          if (o + 2 > out.length) out = grown(out, o, 2);
          const b = s[i++] as number;
          if (inString) {
            if (b === QUOTE) inString = false;
            else if (b === BACKSLASH) {
              // The escaped character is never a closing quote; a backslash is doubled, escaped or
              // not. (An escape JSON does not have is left for PostgreSQL to refuse, as the row path does.)
              if (i >= end) return undefined;
              if (o + 4 > out.length) out = grown(out, o, 4);
              const escaped = s[i++] as number;
              out[o++] = BACKSLASH;
              out[o++] = BACKSLASH;
              if (escaped === BACKSLASH) out[o++] = BACKSLASH;
              out[o++] = escaped;
              continue;
            } else if (b === TAB || b === NEWLINE || b === CARRIAGE_RETURN) return undefined; // not JSON.stringify's
          } else if (b === QUOTE) inString = true;
          else if (b === OPEN_ARRAY || b === OPEN_OBJECT) depth += 1;
          else if (b === CLOSE_ARRAY || b === CLOSE_OBJECT) depth -= 1;
          // Whitespace, or a backslash outside a string (not JSON: undoubled, COPY would decode it).
          else if (b === TAB || b === NEWLINE || b === CARRIAGE_RETURN || b === SPACE || b === BACKSLASH)
            return undefined;
          out[o++] = b;
          if (depth === 0 && !inString) break;
        }
      } else if (first === QUOTE) {
        // A string for a non-json column: its bytes without the quotes, its escapes as COPY text.
        i += 1;
        for (;;) {
          if (i >= end) return undefined;
          if (o + 1 > out.length) out = grown(out, o, 1);
          const b = s[i++] as number;
          if (b === QUOTE) break;
          if (b === BACKSLASH) {
            // JSON's escapes as COPY text, as the row path writes the decoded character. `\u`
            // (a control character, a lone surrogate) and escapes JSON does not have (which COPY
            // would read as its own: `\N`, `\.`, `\x41`) are the row path's to decode or refuse.
            const copyText = ESCAPES.get(s[i] ?? -1);
            if (copyText === undefined) return undefined;
            if (o + 2 > out.length) out = grown(out, o, 2);
            for (let k = 0; k < copyText.length; k++) out[o++] = copyText[k] as number;
            i += 1;
          } else if (b === TAB || b === NEWLINE || b === CARRIAGE_RETURN)
            return undefined; // not JSON.stringify's
          else out[o++] = b;
        }
      } else {
        // A literal or a number, as a word: `null` is \N, a boolean t or f (in a json column,
        // true or false); JSON's digits are PostgreSQL's (JSON.stringify writes what String(n)
        // gives).
        const from = i;
        while (i < end && isWordByte(s[i] as number)) i += 1;
        const length = i - from;
        if (length === 0) return undefined;
        if (o + length > out.length) out = grown(out, o, length);
        if (first === LOWER_N || first === LOWER_T || first === LOWER_F) {
          const literal = first === LOWER_N ? NULL : first === LOWER_T ? TRUE : FALSE;
          if (length !== literal.length) return undefined;
          for (let k = 1; k < length; k++) if (s[from + k] !== literal[k]) return undefined;
          if (first === LOWER_N) {
            out[o++] = BACKSLASH;
            out[o++] = LETTER_N;
            continue;
          }
          if (json[c] !== true) {
            out[o++] = first;
            continue;
          }
        } else if (!isJsonNumber(s, from, i)) return undefined;
        for (let k = from; k < i; k++) out[o++] = s[k] as number;
      }
    }
    if (s[i] !== CLOSE_ARRAY || s[i + 1] !== CLOSE_ARRAY) return undefined;
    i += 2;
    rows += 1;
    if (o + 1 > out.length) out = grown(out, o, 1);
    out[o++] = NEWLINE;
    if (i === end - 1 && s[i] === CLOSE_ARRAY) return { bytes: out.subarray(0, o), rows };
    if (s[i] !== COMMA) return undefined;
    i += 1;
  }
}

/** A byte of a number or of `null`, `true`, `false`. */
function isWordByte(b: number): boolean {
  return (
    (b >= 0x30 && b <= 0x39) ||
    (b >= 0x61 && b <= 0x7a) ||
    b === 0x2d ||
    b === 0x2b ||
    b === 0x2e ||
    b === 0x45
  );
}

/** Whether bytes `from` to `to` are a number as the row path reads one: -?\d+(\.\d+)?([eE][+-]?\d+)? */
function isJsonNumber(s: Uint8Array, from: number, to: number): boolean {
  let k = from;
  if (s[k] === 0x2d) k += 1; // -
  let start = k;
  k = digitsEnd(s, k, to);
  if (k === start) return false;
  if (s[k] === 0x2e) {
    start = k + 1; // .
    k = digitsEnd(s, start, to);
    if (k === start) return false;
  }
  if (s[k] === 0x65 || s[k] === 0x45) {
    k += 1; // e E
    if (s[k] === 0x2b || s[k] === 0x2d) k += 1; // + -
    start = k;
    k = digitsEnd(s, k, to);
    if (k === start) return false;
  }
  return k === to;
}

/** The index after the digits from `k` on (`k` if none). */
function digitsEnd(s: Uint8Array, k: number, to: number): number {
  while (k < to && (s[k] as number) >= 0x30 && (s[k] as number) <= 0x39) k += 1;
  return k;
}

/** `out` with room for `bytes` more after its first `used`. */
function grown(out: Buffer, used: number, bytes: number): Buffer {
  const bigger = Buffer.allocUnsafe(Math.max(out.length * 2, used + bytes));
  out.copy(bigger, 0, 0, used);
  return bigger;
}
