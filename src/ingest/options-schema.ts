/**
 * `ingest()`'s options, checked all at once at the call, before any SQL, by one zod schema that
 * also owns their defaults (as `defineTable` validates a definition: table-definition.ts). The
 * types a user writes, with `@default` in their JSDoc, are in options.ts; the core works on what
 * this schema returns, every default filled in.
 */
import { z } from 'zod';
import { PgBulkIngestError } from '../errors.ts';
import {
  BadRows,
  Delete,
  HighWatermark,
  type IngestLogger,
  type IngestOptions,
  type Json,
  SchemaChanges,
  Upsert,
  Visibility,
} from './options.ts';

/** When removing the backends that block a lock (swap/force-execute.ts), defaults filled in. */
export interface BlockingDelays {
  readonly cancelAfterMs: number;
  readonly terminateAfterMs: number;
  readonly intervalMs: number;
}

/** `blockingBackends` resolved: the delays, or `false` to wait for the lock as long as it takes. */
export type BlockingBackends = BlockingDelays | false;

export interface ResolvedOptions {
  readonly highWatermark: Json;
  readonly visibility: Visibility;
  readonly upsert: Upsert;
  readonly delete: Delete;
  readonly onBeforeVisible: NonNullable<IngestOptions['onBeforeVisible']>;
  readonly maxRowsPerTableBuffer: number;
  readonly schemaChanges: SchemaChanges;
  readonly badRows: BadRows;
  readonly maxBadRows: number;
  readonly blockingBackends: BlockingBackends;
  readonly logger: IngestLogger;
}

/** What a zod issue says after "Expected `<option>` ": every message below reads on from there. */
type Expectation = (input: unknown) => string;

function got(input: unknown): string {
  if (typeof input === 'function') return 'got a function';
  if (Array.isArray(input)) return 'got an array';
  if (typeof input === 'object' && input !== null) return 'got an object';
  return `got \`${String(input)}\``;
}

function oneOf<const T extends Record<string, string>>(constants: T) {
  const allowed = Object.values(constants) as T[keyof T][];
  const expected: Expectation = (input) =>
    `to be one of ${allowed.map((a) => `'${a}'`).join(', ')}, ${got(input)}`;
  return z.enum(allowed as [T[keyof T], ...T[keyof T][]], { error: (issue) => expected(issue.input) });
}

function integerAtLeast(minimum: number) {
  const expected: Expectation = (input) => `to be an integer >= ${minimum}, ${got(input)}`;
  return z.int({ error: (issue) => expected(issue.input) }).min(minimum);
}

function finiteAtLeast(minimum: number) {
  const expected: Expectation = (input) => `to be a finite number >= ${minimum}, ${got(input)}`;
  return z.number({ error: (issue) => expected(issue.input) }).min(minimum);
}

function callable<F>() {
  return z.custom<F>((value) => typeof value === 'function', {
    error: (issue) => `to be a function, got ${typeof issue.input}`,
  });
}

/** The delays of `blockingBackends`, each defaulted alone: `{ cancelAfterMs: 1000 }` keeps the other two. */
export const blockingDelaysSchema = z.object(
  {
    /** As pg-force-execute: 5 minutes. */
    cancelAfterMs: finiteAtLeast(0).default(300_000),
    terminateAfterMs: finiteAtLeast(0).default(310_000),
    intervalMs: finiteAtLeast(1).default(1_000),
  },
  { error: (issue) => `to be \`false\` or an object of delays, ${got(issue.input)}` },
);

/**
 * `false`, or the delays (absent or null: every default). Not a z.union: a union that fails
 * reports only that no option matched, where this names the delay that is wrong.
 */
export const blockingBackendsSchema = z
  .unknown()
  .optional() // so that an absent key comes through the transform, and gets the defaults
  .transform((value, ctx): BlockingBackends => {
    if (value === false) return false;
    const delays = blockingDelaysSchema.safeParse(withoutNulls(value ?? {}));
    if (delays.success) return delays.data;
    for (const issue of delays.error.issues)
      ctx.addIssue({ code: 'custom', message: issue.message, path: issue.path, input: value });
    return z.NEVER;
  });

const noLogging: IngestLogger = { info: () => undefined, warn: () => undefined };
const noop = () => undefined;

const loggerSchema = z.custom<IngestLogger>(
  (value) =>
    typeof value === 'object' &&
    value !== null &&
    typeof (value as IngestLogger).info === 'function' &&
    typeof (value as IngestLogger).warn === 'function',
  { error: (issue) => `to have \`info\` and \`warn\` methods (a pino logger has), ${got(issue.input)}` },
);

export const ingestOptionsSchema = z.object(
  {
    highWatermark: z.custom<Json>().default(HighWatermark.LATEST),
    visibility: oneOf(Visibility).default(Visibility.AFTER_EACH_BATCH),
    upsert: oneOf(Upsert).default(Upsert.IF_PRIMARY_KEY),
    delete: oneOf(Delete).default(Delete.OFF),
    // zod calls a function given as a default to make the default: hence `() => noop`.
    onBeforeVisible: callable<ResolvedOptions['onBeforeVisible']>().default(() => noop),
    maxRowsPerTableBuffer: integerAtLeast(1).default(10_000),
    schemaChanges: oneOf(SchemaChanges).default(SchemaChanges.APPLY),
    badRows: oneOf(BadRows).default(BadRows.FAIL),
    maxBadRows: integerAtLeast(0).default(1000),
    blockingBackends: blockingBackendsSchema,
    logger: loggerSchema.default(() => noLogging),
  },
  { error: (issue) => `to be an object, ${got(issue.input)}` },
);

/**
 * Every option checked and its default filled in; throws `INVALID_OPTIONS` naming each option
 * that is wrong, what it must be and what it was, e.g. ``Expected `maxBadRows` to be an integer >= 0, got `-1` ``.
 */
export function resolveOptions(options: IngestOptions | undefined): ResolvedOptions {
  const result = ingestOptionsSchema.safeParse(withoutNulls(options ?? {}));
  if (result.success) return result.data;
  const issues = result.error.issues;
  const named = issues.map((issue) => `Expected \`${optionPath(issue.path)}\` ${issue.message}`);
  const first = issues[0];
  throw new PgBulkIngestError('INVALID_OPTIONS', named.join('; '), {
    path: first ? optionPath(first.path) : 'options',
  });
}

/**
 * An option given as null takes its default, as it always has (`??`); but `highWatermark`, where
 * null is a value: start as if none were stored.
 */
function withoutNulls(options: unknown): unknown {
  if (typeof options !== 'object' || options === null || Array.isArray(options)) return options;
  return Object.fromEntries(
    Object.entries(options).filter(([name, value]) => value !== null || name === 'highWatermark'),
  );
}

function optionPath(path: readonly PropertyKey[]): string {
  return path.length === 0 ? 'options' : path.map(String).join('.');
}
