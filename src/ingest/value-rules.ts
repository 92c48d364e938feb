/**
 * What PostgreSQL refuses (or silently changes), known from a value and its column's type alone:
 * checked before a batch is acknowledged, so that an enqueued batch (a 202 from the gateway)
 * commits unless a constraint refuses it, instead of blocking its stream when COPY meets the
 * value. One owner per rule: the wire validation (gateway, CLI, jobs from other
 * languages: `wireValueProblem` in queue/batch-contract.ts) and the Producer's fast path
 * (queue/wire-row-writer.ts) both call these; ingest() leaves them to PostgreSQL.
 *
 * A `ValueRule` takes one non-null element (array items one by one) in the form COPY writes it: a
 * string, a number (possibly NaN or ±Infinity), or a boolean. The wire's own shape rules (bigints
 * beyond 2^53 as strings, bytea as base64) are batch-contract.ts's; the characters of strings
 * and what a json value may hold are text-rules.ts's, checked separately, so the Producer can
 * check them once per row.
 */
import { type DateTimeKind, dateTimeProblem } from './date-time-rules.ts';
import type { ParsedType } from './pg-type.ts';

/** Why PostgreSQL would refuse one value of a column, or undefined when it takes it. */
export type ValueRule = (value: unknown) => string | undefined;

/** Integer types and their ranges (oid takes negatives as their unsigned twin, as PostgreSQL does). */
export const INTEGER_RANGES: ReadonlyMap<string, readonly [min: bigint, max: bigint]> = new Map([
  ['smallint', [-(2n ** 15n), 2n ** 15n - 1n]],
  ['int2', [-(2n ** 15n), 2n ** 15n - 1n]],
  ['integer', [-(2n ** 31n), 2n ** 31n - 1n]],
  ['int', [-(2n ** 31n), 2n ** 31n - 1n]],
  ['int4', [-(2n ** 31n), 2n ** 31n - 1n]],
  ['bigint', [-(2n ** 63n), 2n ** 63n - 1n]],
  ['int8', [-(2n ** 63n), 2n ** 63n - 1n]],
  ['oid', [-(2n ** 31n), 2n ** 32n - 1n]],
]);

/** Base types whose values are integers (a number, or a string of digits). */
export const INTEGER_TYPES: ReadonlySet<string> = new Set(INTEGER_RANGES.keys());
/** Base types whose values are numbers (a number, or a numeric string). */
export const NUMBER_TYPES: ReadonlySet<string> = new Set([
  'real',
  'float4',
  'double precision',
  'float8',
  'float',
  'numeric',
  'decimal',
  'money',
]);
const LENGTH_TYPES: ReadonlySet<string> = new Set([
  'varchar',
  'character varying',
  'char',
  'character',
  'bpchar',
]);
const DATE_TIME_KINDS: ReadonlyMap<string, DateTimeKind> = new Map([
  ['date', 'date'],
  ['timestamp', 'timestamp'],
  ['timestamptz', 'timestamp'],
  ['time', 'time'],
  ['timetz', 'time'],
]);

const INTEGER_TEXT = /^[+-]?\d+$/;
/** The numeric strings taken (a subset of PostgreSQL's: no spaces, Infinity and NaN spelt so). */
const NUMBER_TEXT = /^([+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?|[+-]?Infinity|NaN)$/;
/** PostgreSQL's forms: braces or none, a hyphen (or none) after any group of four hex digits. */
const UUID = /^(?:[0-9a-f]{4}(?:-?[0-9a-f]{4}){7}|\{[0-9a-f]{4}(?:-?[0-9a-f]{4}){7}\})$/i;
/** numeric's own limit on digits before the point (without a declared precision). */
const NUMERIC_MAX_INTEGER_DIGITS = 131072;

/** The rule for one value of the column's type (an array's items), or undefined when there is none. */
export function valueRuleFor(type: ParsedType): ValueRule | undefined {
  const { base, modifiers } = type;
  const range = INTEGER_RANGES.get(base);
  if (range) return integerRule(base, range[0], range[1]);
  if (base === 'numeric' || base === 'decimal') return numericRule(modifiers[0], modifiers[1] ?? 0);
  if (base === 'real' || base === 'float4' || (base === 'float' && (modifiers[0] ?? 53) <= 24))
    return floatRule('real', Math.fround);
  if (base === 'double precision' || base === 'float8' || base === 'float')
    return floatRule('double precision', (x) => x);
  if (base === 'money') return moneyRule;
  if (LENGTH_TYPES.has(base)) {
    // `char` and `character` alone are character(1); `varchar` and `bpchar` alone have no limit.
    const length = modifiers[0] ?? (base === 'char' || base === 'character' ? 1 : undefined);
    return length === undefined ? undefined : lengthRule(length);
  }
  const kind = DATE_TIME_KINDS.get(base);
  if (kind) return (v) => (typeof v === 'string' ? dateTimeProblem(kind, v) : expectedString(kind, v));
  if (base === 'uuid') {
    return (v) =>
      typeof v === 'string' && UUID.test(v) ? undefined : `is not a uuid, got ${JSON.stringify(v)}`;
  }
  return undefined;
}

/** Why an integer does not fit its type: the one wording, for every path that checks it. */
export function integerOutOfRange(name: string, value: unknown): string {
  const [min, max] = INTEGER_RANGES.get(name) ?? [0n, 0n];
  return `is out of range for ${name} (${min} to ${max}), got ${JSON.stringify(value)}`;
}

function integerRule(name: string, min: bigint, max: bigint): ValueRule {
  const [low, high] = [Number(min), Number(max)];
  const outOfRange = (v: unknown) => integerOutOfRange(name, v);
  return (v) => {
    if (typeof v === 'number') {
      if (!Number.isFinite(v)) return `is ${v}: ${name} cannot hold NaN or Infinity`;
      if (!Number.isInteger(v)) return `is not an integer, got ${v}`;
      return v >= low && v <= high ? undefined : outOfRange(v);
    }
    if (typeof v !== 'string' || !INTEGER_TEXT.test(v)) {
      if (v === 'NaN' || v === 'Infinity' || v === '-Infinity')
        return `is ${v}: ${name} cannot hold NaN or Infinity`;
      return `expected an integer or a string of digits, got ${JSON.stringify(v)}`;
    }
    // Up to 15 digits a double is exact; beyond, compare as BigInt.
    if (v.length <= 15) return Number(v) >= low && Number(v) <= high ? undefined : outOfRange(v);
    const n = BigInt(v);
    return n >= min && n <= max ? undefined : outOfRange(v);
  };
}

/** The text of a numeric value, or why it is not one. */
function numericText(v: unknown): string | { problem: string } {
  if (typeof v === 'number') return String(v); // what COPY is given: JSON.stringify writes the same
  if (typeof v === 'string' && NUMBER_TEXT.test(v)) return v;
  return { problem: `expected a number or a numeric string, got ${JSON.stringify(v)}` };
}

/**
 * numeric(p,s) refuses a value with more than p - s digits before the point once rounded to s
 * places (half away from zero); extra fractional digits are rounded, not refused. NaN fits any
 * numeric; Infinity only an unconstrained one (PostgreSQL 14+).
 */
function numericRule(precision: number | undefined, scale: number): ValueRule {
  const integerDigits = precision === undefined ? NUMERIC_MAX_INTEGER_DIGITS : precision - scale;
  // Below this a number surely fits (a margin far wider than a double's rounding error).
  const surelyFits = precision === undefined ? Infinity : (10 ** integerDigits - 10 ** -scale) * (1 - 1e-12);
  const declared = precision === undefined ? 'numeric' : `numeric(${precision},${scale})`;
  return (v) => {
    if (typeof v === 'number' && Math.abs(v) < surelyFits) return undefined;
    const text = numericText(v);
    if (typeof text !== 'string') return text.problem;
    if (text === 'NaN') return undefined;
    if (text.endsWith('Infinity'))
      return precision === undefined ? undefined : `is ${text}: ${declared} cannot hold Infinity`;
    const digits = integerDigitsAfterRounding(text, scale);
    if (digits <= integerDigits) return undefined;
    return `has ${digits} digits before the decimal point; ${declared} holds at most ${integerDigits}, got ${JSON.stringify(v)}`;
  };
}

/** Digits before the point of a decimal text (`-12.5e3`) once rounded to `scale` places. */
export function integerDigitsAfterRounding(text: string, scale: number): number {
  const match = /^[+-]?(\d*)(?:\.(\d*))?(?:[eE]([+-]?\d+))?$/.exec(text);
  if (!match) return 0;
  const whole = match[1] ?? '';
  const all = whole + (match[2] ?? '');
  const first = all.search(/[1-9]/);
  if (first < 0) return 0; // zero
  const digits = all.slice(first);
  // Position of the point within `digits`: digits before it.
  let point = whole.length + Number(match[3] ?? 0) - first;
  const kept = point + scale; // digits kept by rounding to `scale` places
  if (kept < 0) return 0;
  const roundsUp = (digits.charCodeAt(kept) || 0x30) >= 0x35; // '5'
  if (roundsUp && /^9*$/.test(digits.slice(0, kept))) point += 1; // 99.995 -> 100.00
  return Math.max(point, 0);
}

/** real and double precision refuse values whose magnitude they cannot hold (overflow or underflow). */
function floatRule(name: string, round: (x: number) => number): ValueRule {
  const outOfRange = (v: unknown, x: number) =>
    `is out of range for ${name} (${Number.isFinite(x) ? 'too close to zero' : 'too large'}), got ${JSON.stringify(v)}`;
  return (v) => {
    if (typeof v === 'number') {
      if (!Number.isFinite(v)) return undefined; // NaN and ±Infinity: both types hold them
      const x = round(v); // every double fits double precision: only real can be out of range
      return Number.isFinite(x) && (x !== 0 || v === 0) ? undefined : outOfRange(v, x);
    }
    const text = numericText(v);
    if (typeof text !== 'string') return text.problem;
    const x = round(Number(text));
    if (Number.isNaN(x) || text.endsWith('Infinity')) return undefined;
    const nonZero = /[1-9]/.test(text.split(/[eE]/)[0] as string);
    return Number.isFinite(x) && (x !== 0 || !nonZero) ? undefined : outOfRange(v, x);
  };
}

function moneyRule(v: unknown): string | undefined {
  if (typeof v === 'number' && Number.isFinite(v)) return undefined;
  const text = numericText(v);
  if (typeof text !== 'string') return text.problem;
  return text === 'NaN' || text.endsWith('Infinity')
    ? `is ${text}: money cannot hold NaN or Infinity`
    : undefined;
}

/**
 * varchar(n) and char(n) refuse more than n characters, counted in code points as PostgreSQL
 * counts them, unless every character past n is a space (those are cut off, not refused).
 */
function lengthRule(max: number): ValueRule {
  return (v) => {
    if (typeof v === 'boolean') return undefined; // written as t or f
    const text = typeof v === 'string' ? v : String(v);
    if (text.length <= max) return undefined; // UTF-16 units: never fewer than code points
    let index = 0;
    let count = 0;
    for (const char of text) {
      if (count === max) break;
      count += 1;
      index += char.length;
    }
    if (/^ *$/.test(text.slice(index))) return undefined;
    return `is longer than ${max} characters (${[...text].length}), got ${JSON.stringify(text.length > 60 ? `${text.slice(0, 60)}…` : text)}`;
  };
}

function expectedString(kind: string, v: unknown): string {
  return `expected an ISO 8601 ${kind} string, got ${JSON.stringify(v)}`;
}
