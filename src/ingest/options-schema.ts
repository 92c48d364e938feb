/**
 * `ingest()`'s options, checked all at once at the call, before any SQL, by one zod schema that
 * also owns their defaults (as `defineTable` validates a definition: table-definition.ts). The
 * types a user writes, with `@default` in their JSDoc, are in options.ts; the core works on what
 * this schema returns, every default filled in.
 */
import { z } from 'zod';
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
import { callable, finiteAtLeast, got, integer, oneOf, parseOptions, withoutNulls } from './parse-options.ts';

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
    maxRowsPerTableBuffer: integer(1).default(10_000),
    schemaChanges: oneOf(SchemaChanges).default(SchemaChanges.APPLY),
    badRows: oneOf(BadRows).default(BadRows.FAIL),
    maxBadRows: integer(0).default(1000),
    blockingBackends: blockingBackendsSchema,
    logger: loggerSchema.default(() => noLogging),
  },
  { error: (issue) => `to be an object, ${got(issue.input)}` },
);

/**
 * Every option checked and its default filled in; throws `INVALID_OPTIONS` naming each option
 * that is wrong, what it must be and what it was, e.g. ``Expected `maxBadRows` to be an integer >= 0, got `-1` ``.
 * An option given as null takes its default, as it always has (`??`); but not `highWatermark`,
 * where null is a value: start as if none were stored.
 */
export function resolveOptions(options: IngestOptions | undefined): ResolvedOptions {
  return parseOptions(ingestOptionsSchema, options, { nullIsValue: ['highWatermark'] });
}
