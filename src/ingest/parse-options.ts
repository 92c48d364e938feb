/**
 * Options checked against the zod schema that owns them and their defaults: ingest()'s
 * (options-schema.ts), the Worker's (src/queue/worker-options.ts), the Producer's
 * (producer-options.ts), ... One place says what an option may be and what it is when left out;
 * the code, the CLI's help text and docs/operations.md all read it there.
 *
 * A bad option throws INVALID_OPTIONS naming it, what it must be and what it was, as p-queue's
 * messages do: ``Expected `maxBadRows` to be an integer >= 0, got `-1` ``. The helpers below
 * write the part after "Expected `<option>` "; `parseOptions` puts the option's name in front.
 */
import { z } from 'zod';
import { type ErrorContext, PgBulkIngestError } from '../errors.ts';

/** What a value was, as the end of a message says it: ``got `-1` ``, `got an object`. */
export function got(input: unknown): string {
  if (typeof input === 'function') return 'got a function';
  if (Array.isArray(input)) return 'got an array';
  if (typeof input === 'object' && input !== null) return 'got an object';
  return `got \`${String(input)}\``;
}

/** zod's `error` parameter for a message that reads on from "Expected `<option>` ". */
export function expecting(text: string) {
  return { error: (issue: { readonly input?: unknown }) => `${text}, ${got(issue.input)}` };
}

/** Whether an issue's message reads on from "Expected `<option>` " (one of the helpers' here). */
function readsOn(message: string): boolean {
  return message.startsWith('to ');
}

/**
 * An issue's message as it reads after a name and a colon: ``expected to be an integer >= 0, got `-1` ``
 * for the helpers' messages, zod's own as they are.
 */
export function problemText(message: string): string {
  return readsOn(message) ? `expected ${message}` : message;
}

/**
 * An integer option from `min` (to `max`). Integers are safe ones (zod's `int()`), so a bound in
 * bytes or milliseconds never loses precision.
 */
export function integer(min: number, max?: number) {
  if (max === undefined) return z.int(expecting(`to be an integer >= ${min}`)).min(min);
  return z
    .int(expecting(`to be an integer from ${min} to ${max}`))
    .min(min)
    .max(max);
}

export function finiteAtLeast(minimum: number) {
  return z.number(expecting(`to be a finite number >= ${minimum}`)).min(minimum);
}

/** One of the values of a constants object (`Upsert`, `BadRows`, ...). */
export function oneOf<const T extends Record<string, string>>(constants: T) {
  const allowed = Object.values(constants) as T[keyof T][];
  return z.enum(
    allowed as [T[keyof T], ...T[keyof T][]],
    expecting(`to be one of ${allowed.map((a) => `'${a}'`).join(', ')}`),
  );
}

export function callable<F>() {
  return z.custom<F>((value) => typeof value === 'function', {
    error: (issue) => `to be a function, got ${typeof issue.input}`,
  });
}

/**
 * An option given as null takes its default, as it always has (`??`), except the options named
 * in `keep`, where null is a value (ingest()'s `highWatermark`).
 */
export function withoutNulls(options: unknown, keep: readonly string[] = []): unknown {
  if (typeof options !== 'object' || options === null || Array.isArray(options)) return options;
  return Object.fromEntries(
    Object.entries(options).filter(([name, value]) => value !== null || keep.includes(name)),
  );
}

/**
 * `options` parsed with `schema`: every option checked, each left out (or null, unless named in
 * `nullIsValue`) at its default. Throws INVALID_OPTIONS naming each bad option; `context` (the
 * stream, ...) goes into the error with the first bad option's path.
 */
export function parseOptions<S extends z.ZodType>(
  schema: S,
  options: unknown,
  how: { readonly context?: ErrorContext; readonly nullIsValue?: readonly string[] } = {},
): z.output<S> {
  const input = withoutNulls(options ?? {}, how.nullIsValue);
  const result = schema.safeParse(input);
  if (result.success) return result.data;
  throw optionsError(result.error, input, how.context);
}

/** The INVALID_OPTIONS error for `error`'s issues, each as ``Expected `<option>` ...``. */
export function optionsError(
  error: z.ZodError,
  input: unknown,
  context: ErrorContext = {},
): PgBulkIngestError {
  const named = error.issues.map((issue) => {
    const path = optionPath(issue.path);
    return readsOn(issue.message)
      ? `Expected \`${path}\` ${issue.message}`
      : `\`${path}\`: ${issue.message}, ${got(valueAt(input, issue.path))}`;
  });
  const first = error.issues[0];
  return new PgBulkIngestError('INVALID_OPTIONS', named.join('; '), {
    ...context,
    path: first ? optionPath(first.path) : 'options',
  });
}

function optionPath(path: readonly PropertyKey[]): string {
  return path.length === 0 ? 'options' : path.map(String).join('.');
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
 * One line per problem, for settings (the CLI): `<name>: expected to be ..., got ...`, or
 * `<name>: <message>, got "<value>"`. `nameOf` names a setting from its key (a flag and its
 * environment variable); a URL's password is masked, and the `secrets` never show their value
 * (they must not use the helpers above, whose messages carry the value).
 */
export function problemLines(
  error: z.ZodError,
  input: Readonly<Record<string, unknown>>,
  nameOf: (key: string) => string,
  secrets: ReadonlySet<string> = new Set(),
): string[] {
  return error.issues.map((issue) => {
    const key = String(issue.path[0] ?? '');
    if (readsOn(issue.message)) return `${nameOf(key)}: ${problemText(issue.message)}`;
    const value = input[key];
    const shown =
      value === undefined || secrets.has(key) ? '' : `, got ${JSON.stringify(withoutPassword(value))}`;
    return `${nameOf(key)}: ${issue.message}${shown}`;
  });
}

/** A URL-like setting as it may be shown: its password, if any, masked. */
function withoutPassword(value: unknown): unknown {
  if (typeof value !== 'string') return value;
  return value.replace(/^([a-z][a-z0-9+.-]*:\/\/[^:/@\s]*:)[^@\s]*@/i, '$1***@');
}

/**
 * The default a field of an options schema applies when the option is left out; undefined when it
 * has none. The CLI's help text and the JSDoc test read defaults through this.
 */
export function defaultOf(field: z.ZodType): unknown {
  const result = field.safeParse(undefined);
  return result.success ? result.data : undefined;
}
