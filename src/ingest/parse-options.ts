/**
 * Options checked against the zod schema that owns them and their defaults (the Worker's in
 * src/queue/worker-options.ts, the Producer's in producer-options.ts, ...): one place says what
 * an option may be and what it is when left out; the class, the CLI's help text and
 * docs/operations.md all read it there. A bad option throws INVALID_OPTIONS naming it and the
 * value it got, as p-queue's messages do: ``Worker: `concurrency`: expected an integer from 1 to
 * 256, got `0```.
 */
import { z } from 'zod';
import { PgBulkIngestError } from '../errors.ts';

/**
 * An integer option from `min` (to `max`); the message reads after the option's name. Integers
 * are safe ones (zod's `int()`), so a bound in bytes or milliseconds never loses precision.
 */
export function integer(min: number, max?: number) {
  const error =
    max === undefined ? `expected an integer >= ${min}` : `expected an integer from ${min} to ${max}`;
  const atLeast = z.number({ error }).int({ error }).min(min, { error });
  return max === undefined ? atLeast : atLeast.max(max, { error });
}

/** A value as an error message may show it: a URL's password masked, an object not spelled out. */
export function shownValue(value: unknown): string {
  if (typeof value === 'string') return JSON.stringify(withoutPassword(value));
  if (typeof value === 'function') return 'a function';
  if (typeof value === 'object' && value !== null) return Array.isArray(value) ? 'an array' : 'an object';
  return String(value);
}

function withoutPassword(value: string): string {
  return value.replace(/^([a-z][a-z0-9+.-]*:\/\/[^:/@\s]*:)[^@\s]*@/i, '$1***@');
}

/**
 * One line per problem: `<name>: <what was expected>, got <value>`; `nameOf` names an option
 * from its path (a flag and its environment variable, for the CLI), and the `secrets` never
 * show their value.
 */
export function problemLines(
  error: z.ZodError,
  input: unknown,
  nameOf: (path: string) => string,
  secrets: ReadonlySet<string> = new Set(),
): string[] {
  return error.issues.map((issue) => {
    const path = issue.path.map(String).join('.');
    const value = valueAt(input, issue.path);
    const got = value === undefined || secrets.has(String(issue.path[0])) ? '' : `, got ${shownValue(value)}`;
    return `${nameOf(path)}: ${issue.message}${got}`;
  });
}

function valueAt(input: unknown, path: readonly PropertyKey[]): unknown {
  let value = input;
  for (const key of path) {
    if (typeof value !== 'object' || value === null) return undefined;
    value = (value as Record<PropertyKey, unknown>)[key];
  }
  return value;
}

/**
 * `input` parsed with `schema`: every option present and checked, each left out at its default.
 * `owner` ("Worker", "Producer") starts the message of the INVALID_OPTIONS error a bad one throws.
 */
export function parseOptions<S extends z.ZodType>(schema: S, input: unknown, owner: string): z.output<S> {
  const result = schema.safeParse(input ?? {});
  if (result.success) return result.data;
  const lines = problemLines(result.error, input, (path) => `\`${path || '(options)'}\``);
  throw new PgBulkIngestError('INVALID_OPTIONS', `${owner}: ${lines.join('; ')}`, {
    path: result.error.issues[0]?.path.map(String).join('.') ?? '',
  });
}

/**
 * The default a field of an options schema applies when the option is left out; undefined when it
 * has none. The CLI's help text and the JSDoc test read defaults through this.
 */
export function defaultOf(field: z.ZodType): unknown {
  const result = field.safeParse(undefined);
  return result.success ? result.data : undefined;
}
