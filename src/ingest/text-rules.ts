/**
 * What no PostgreSQL text can hold (a NUL, a lone UTF-16 surrogate), and what JSON.stringify would
 * write other than as given (NaN, a Map, a Buffer, ...): the rules for strings and json values, as
 * value-rules.ts has them per column type, with the same callers (the wire validation, the
 * Producer's fast path, ingest()'s encoding), so every path refuses the same values.
 */

const isWellFormed = (text: string): boolean => (text as string & { isWellFormed(): boolean }).isWellFormed();

/**
 * Characters no PostgreSQL text can hold: NUL (COPY refuses it, and jsonb its `\u0000` escape),
 * and a lone UTF-16 surrogate, which is not Unicode (a text column would store U+FFFD instead of
 * it, silently; jsonb refuses its escape). A `json` column keeps both as escapes: not checked there.
 */
export function stringProblem(text: string): string | undefined {
  if (text.indexOf('\0') === -1 && isWellFormed(text)) return undefined;
  const at = text.search(/\0|[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/);
  const code = text.charCodeAt(at);
  if (code === 0)
    return `holds a NUL character (\\u0000) at character ${at + 1}, which PostgreSQL cannot store`;
  return `holds a lone UTF-16 surrogate (\\u${code.toString(16)}) at character ${at + 1}: not Unicode, PostgreSQL would refuse it or store U+FFFD`;
}

/** A backslash and `u`: a regular expression test finds it faster than indexOf in a two-byte string. */
const BACKSLASH_U = /\\u/;

/**
 * Whether JSON.stringify's text may hold a string `stringProblem` refuses. JSON.stringify escapes
 * NUL as `\u0000` and a lone surrogate as `\udXXX` (and other control characters as `\u00XX`), so
 * text without `\u` holds neither: one search per row instead of a check per string.
 */
export function jsonTextMayHoldBadString(json: string): boolean {
  return BACKSLASH_U.test(json);
}

/**
 * Why a JavaScript value cannot be stored as json/jsonb, or undefined. JSON.stringify would
 * silently write NaN, ±Infinity and an invalid Date as null, a Map or Set as {}, and a Buffer as
 * {"type":"Buffer","data":[...]}: these are refused, in ingest() and in the queue alike. `strings`
 * also applies `stringProblem` to every string and key (jsonb). Bigints are written as strings;
 * undefined, functions and symbols are left out, as JSON.stringify does.
 */
export function jsonValueProblem(value: unknown, strings: boolean): string | undefined {
  try {
    const problem = walkJson(value, strings);
    if (problem === undefined) return undefined;
    const [what, path] = problem;
    return path === '' ? what : `${what} (at ${path})`;
  } catch (error) {
    if (error instanceof RangeError) return 'is nested too deeply to be written as JSON';
    throw error;
  }
}

type JsonProblem = [what: string, path: string];

/**
 * Whether walkJson must look at a value: a container, a number that is not finite, or a string
 * when strings are checked. Tested inline in the loops, so a plain value costs no call (the
 * Producer's fast path walks every json value).
 */
function needsLook(value: unknown, strings: boolean): boolean {
  return typeof value === 'object'
    ? value !== null
    : typeof value === 'number'
      ? value - value !== 0
      : strings && typeof value === 'string';
}

function walkJson(value: unknown, strings: boolean): JsonProblem | undefined {
  if (typeof value === 'number')
    return value - value === 0 ? undefined : [`holds ${value}, which JSON cannot hold`, ''];
  if (typeof value === 'string') {
    const problem = strings ? stringProblem(value) : undefined;
    return problem === undefined ? undefined : [problem, ''];
  }
  if (typeof value !== 'object' || value === null) return undefined;
  if (Array.isArray(value)) {
    for (let i = 0; i < value.length; i++) {
      if (!needsLook(value[i], strings)) continue;
      const problem = walkJson(value[i], strings);
      if (problem) return [problem[0], `[${i}]${problem[1]}`];
    }
    return undefined;
  }
  if (Object.getPrototypeOf(value) !== Object.prototype) {
    const special = specialObjectProblem(value);
    if (special !== null) return special === undefined ? undefined : [special, ''];
  }
  const record = value as Record<string, unknown>;
  for (const key in record) {
    const keyProblem = strings ? stringProblem(key) : undefined;
    if (keyProblem) return [`has a key that ${keyProblem}`, ''];
    const item = record[key];
    if (!needsLook(item, strings)) continue;
    const problem = walkJson(item, strings);
    if (problem) return [problem[0], `.${key}${problem[1]}`];
  }
  return undefined;
}

/** For objects JSON.stringify does not write as their properties: a problem, undefined (fine), or null (walk it). */
function specialObjectProblem(value: object): string | undefined | null {
  if (ArrayBuffer.isView(value) || value instanceof ArrayBuffer)
    return 'holds a Buffer: JSON has no bytes; encode it first, e.g. buffer.toString("base64")';
  if (value instanceof Date)
    return Number.isNaN(value.getTime()) ? 'holds an invalid Date (JSON.stringify writes null)' : undefined;
  if (value instanceof Map || value instanceof Set) {
    const kind = value instanceof Map ? 'Map' : 'Set';
    return `holds a ${kind}, which JSON.stringify writes as {}: convert it first (Object.fromEntries(map), [...set])`;
  }
  // Its own JSON form (a Decimal, a Temporal value, ...): what toJSON returns is written.
  if (typeof (value as { toJSON?: unknown }).toJSON === 'function') return undefined;
  return null;
}
