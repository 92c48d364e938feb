/**
 * The one check that a high watermark or batch metadata can be stored as JSON, used by `ingest()`
 * (the comment) and the queue's Producer (Redis, then jsonb in `bulk_ingest.stream_state`), so
 * that both refuse the same values, before anything is written.
 *
 * `JSON.stringify` does not refuse what it cannot hold: it drops `undefined` and functions, writes
 * `NaN` as `null` and a `Map` as `{}`, and throws on a `bigint`. PostgreSQL's jsonb then refuses
 * `\u0000` in a string and lone surrogates. A value that got through was acknowledged and then
 * failed at the worker, or was stored changed. Accepted: null, booleans, finite numbers, bigints,
 * strings that are well-formed Unicode without NUL, arrays, plain objects, `Date` (stored as its
 * ISO 8601 string) and this package's exact representations (`JsonNumber`, `JsonObject`), at most
 * `MAX_JSON_DEPTH` levels deep. The walk is iterative: a value nested 100,000 deep (or cyclic) is
 * refused, not a stack overflow.
 */
import { type ErrorContext, PgBulkIngestError } from '../errors.ts';
import { JsonNumber, JsonObject } from './exact-json.ts';

/** Most levels of arrays and objects in a high watermark or metadata value. */
export const MAX_JSON_DEPTH = 100;

/**
 * Throws INVALID_JSON_VALUE naming `what` (e.g. `Batch 3: the high watermark`) and the path
 * into the value (`$.ids[2]`) of the first part JSON cannot hold.
 */
export function assertStorableJson(value: unknown, what: string, context: ErrorContext = {}): void {
  const pending: { value: unknown; path: string; depth: number }[] = [{ value, path: '$', depth: 0 }];
  for (let item = pending.pop(); item !== undefined; item = pending.pop()) {
    const problem = problemOf(item.value);
    if (problem !== undefined) throw refusal(what, item.path, problem, context);
    const children = childrenOf(item.value);
    if (children === undefined) continue;
    if (item.depth >= MAX_JSON_DEPTH) {
      throw refusal(
        what,
        item.path,
        `nests arrays/objects more than ${MAX_JSON_DEPTH} levels deep (or refers to itself)`,
        context,
      );
    }
    const next: typeof pending = [];
    for (const [key, child] of children) {
      const keyProblem = typeof key === 'string' ? stringProblem(key) : undefined;
      const path = typeof key === 'number' ? `${item.path}[${key}]` : `${item.path}.${key}`;
      if (keyProblem !== undefined) throw refusal(what, path, `has a key that ${keyProblem}`, context);
      next.push({ value: child, path, depth: item.depth + 1 });
    }
    // Reversed onto the stack, so the first problem in document order is the one reported.
    for (let i = next.length - 1; i >= 0; i--) pending.push(next[i] as (typeof pending)[number]);
  }
}

function refusal(what: string, path: string, problem: string, context: ErrorContext): PgBulkIngestError {
  return new PgBulkIngestError(
    'INVALID_JSON_VALUE',
    `${what} cannot be stored as JSON: at ${path}, the value ${problem}`,
    { ...context, path },
  );
}

/** Why JSON (or jsonb) cannot hold this value itself, its contents aside; undefined if it can. */
function problemOf(value: unknown): string | undefined {
  switch (typeof value) {
    case 'string':
      return stringProblem(value);
    case 'number':
      return Number.isFinite(value) ? undefined : `is ${value}, which JSON has no number for`;
    case 'undefined':
      return 'is undefined (a missing value: use null)';
    case 'function':
    case 'symbol':
      return `is a ${typeof value}`;
    case 'object':
      return objectProblem(value);
    default:
      return undefined; // boolean, bigint
  }
}

function objectProblem(value: object | null): string | undefined {
  if (value === null || Array.isArray(value) || value instanceof JsonObject) return undefined;
  if (value instanceof JsonNumber)
    return /\d/.test(value.text) ? undefined : `is ${value.text}, which JSON has no number for`;
  if (value instanceof Date) return Number.isNaN(value.getTime()) ? 'is an invalid Date' : undefined;
  const proto = Object.getPrototypeOf(value);
  if (proto === Object.prototype || proto === null) return undefined;
  const name = (proto?.constructor as { name?: string } | undefined)?.name || 'object';
  return `is a ${name}, not a plain object, array or Date (convert it to one first)`;
}

const LONE_SURROGATE = /[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/;

/** A string PostgreSQL's jsonb (and any UTF-8 reader) takes back unchanged. */
function stringProblem(text: string): string | undefined {
  if (text.includes('\u0000')) return 'contains "\\u0000", which PostgreSQL cannot store in jsonb or text';
  if (LONE_SURROGATE.test(text))
    return 'contains a lone surrogate (half of a UTF-16 pair), which is not valid Unicode';
  return undefined;
}

function childrenOf(value: unknown): Iterable<[string | number, unknown]> | undefined {
  if (value === null || typeof value !== 'object') return undefined;
  if (Array.isArray(value)) return Array.from({ length: value.length }, (_, i) => [i, value[i]]);
  if (value instanceof JsonObject) return value.entries();
  if (value instanceof JsonNumber || value instanceof Date) return undefined;
  return Object.entries(value);
}
