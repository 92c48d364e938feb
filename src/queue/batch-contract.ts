/**
 * The batch contract: what one batch looks like on the wire, defined once. Producers (the
 * `Producer` class, the CLI, the HTTP gateway) validate against it before enqueueing, the worker
 * validates again before applying, and `schema/batch.schema.json` is generated from it for
 * producers in other languages (`npm run schema`). The format is documented in docs/batch-format.md.
 *
 * The envelope is validated with zod; rows, which may number millions, by a plain loop that
 * names the row and column of the first problem.
 */
import { z } from 'zod';
import { type ErrorContext, PgBulkIngestError } from '../errors.ts';
import { JsonNumber, toPlainJson } from '../ingest/exact-json.ts';
import { BadRows, type IngestOptions, type Json } from '../ingest/options.ts';
import { ingestOptionsSchema } from '../ingest/options-schema.ts';
import { problemText } from '../ingest/parse-options.ts';
import type { ParsedType } from '../ingest/pg-type.ts';
import { assertStorableJson } from '../ingest/storable-json.ts';
import {
  defineTable,
  type IngestTable,
  type TableDefinitionInput,
  tableDefinitionSchema,
} from '../ingest/table-definition.ts';
import { jsonValueProblem, stringProblem } from '../ingest/text-rules.ts';
import { INTEGER_TYPES, NUMBER_TYPES, type ValueRule, valueRuleFor } from '../ingest/value-rules.ts';
import { exactWireValue, WireNumberError } from './wire-numbers.ts';

export const BATCH_FORMAT_VERSION = 1;

const jsonValue: z.ZodType<Json> = z.lazy(() =>
  z.union([
    z.string(),
    z.number(),
    z.bigint(), // an integer beyond 2^53, read exactly (exact-json.ts); in JSON Schema an integer
    z.boolean(),
    z.null(),
    z.array(jsonValue),
    z.record(z.string(), jsonValue),
  ]),
);

/**
 * A batch's options: the ones of ingest() that travel, with ingest()'s checks and defaults
 * (options-schema.ts owns them: one place says `maxBadRows` is 1000 when left out). Strict: an
 * option this format does not carry is refused, not dropped.
 */
export const batchOptionsSchema = z.strictObject(
  ingestOptionsSchema.pick({
    upsert: true,
    delete: true,
    visibility: true,
    schemaChanges: true,
    badRows: true,
    maxBadRows: true,
  }).shape,
);

/** A row on the wire: `["schema.table", [value, ...]]`, values in column order, encoded per type. */
export const wireRowSchema = z.tuple([z.string(), z.array(z.unknown())]);

/** Longest stream name and batch id: both are keys in Redis and text in PostgreSQL. */
export const MAX_STREAM_LENGTH = 512;
export const MAX_BATCH_ID_LENGTH = 200;

/**
 * Why a stream name or batch id cannot be used, or undefined. Both are stored in PostgreSQL text
 * columns (bulk_ingest), which refuse a NUL and turn a lone surrogate into U+FFFD (two names would
 * become one): refused before anything is enqueued, not found by a worker afterwards.
 */
export function nameProblem(name: string, maxLength: number): string | undefined {
  if (name.length === 0) return 'is empty';
  if (name.length > maxLength) return `is longer than ${maxLength} characters (${name.length})`;
  return stringProblem(name);
}

export const batchJobSchema = z.strictObject({
  /** Format version; a worker refuses versions it does not know. */
  version: z
    .literal(BATCH_FORMAT_VERSION)
    .describe('Format version; a worker refuses versions it does not know'),
  /** The stream this batch belongs to. @default "<schema>.<table>" of the first table */
  stream: z
    .string()
    .min(1)
    .max(MAX_STREAM_LENGTH)
    .optional()
    .describe('The ordered stream this batch belongs to; default "<schema>.<table>" of the first table'),
  /** Idempotency key: enqueueing the same batchId twice on a stream enqueues it once. @default a random UUID */
  batchId: z
    .string()
    .min(1)
    .max(MAX_BATCH_ID_LENGTH)
    .optional()
    .describe('Idempotency key: the same batchId enqueued twice on a stream is enqueued once'),
  tables: z
    .array(tableDefinitionSchema)
    .min(1)
    .describe('Table definitions, as defineTable() takes them; the first holds the high watermark'),
  highWatermark: jsonValue.describe("Stored in the first table's comment when the batch commits"),
  metadata: jsonValue.default(null).describe('Passed to onBeforeVisible; not stored'),
  rows: z.array(wireRowSchema).describe('["schema.table", [values in column order]] per row'),
  // Every option at its default; the whole object is the default, so the JSON Schema shows it.
  options: batchOptionsSchema.default(batchOptionsSchema.parse({})),
});

export type BatchJobInput = z.input<typeof batchJobSchema>;
export type BatchJob = z.output<typeof batchJobSchema>;
/**
 * A batch's options, every one given: ingest()'s own type, so that an editor shows their JSDoc
 * and `@default`s (options.ts). test/unit/option-schemas.test.ts checks it is what
 * batchOptionsSchema returns.
 */
export type BatchOptions = Required<Pick<IngestOptions, keyof z.output<typeof batchOptionsSchema>>>;
export type WireRow = readonly [table: string, values: readonly unknown[]];

export class InvalidBatchError extends PgBulkIngestError {
  constructor(message: string, context: ErrorContext) {
    super('INVALID_BATCH_JOB', message, context);
  }
}

/**
 * The name a row uses for its table, and the default stream name: `schema.table`, or, when
 * either part contains `.` or `"`, both parts double-quoted as in SQL (`"a.b"."c"`), so that no
 * two tables share a name (`"S.x"."t"` and `"S"."x.t"` would both be `S.x.t`).
 */
export function tableKey(table: { schema: string; name: string }): string {
  const plain = (part: string) => !/[."]/.test(part);
  if (plain(table.schema) && plain(table.name)) return `${table.schema}.${table.name}`;
  const quote = (part: string) => `"${part.replaceAll('"', '""')}"`;
  return `${quote(table.schema)}.${quote(table.name)}`;
}

/**
 * A table as it travels: the definition `defineTable` accepts. Column-level `unique`/`index`
 * flags travel as explicit indexes (the table object already lists them there), so the worker's
 * `defineTable` rebuilds exactly the same table.
 */
export function toTableDefinitionInput(table: IngestTable): TableDefinitionInput {
  return {
    schema: table.schema,
    name: table.name,
    columns: table.columns.map((c) => ({
      name: c.name,
      type: c.type,
      nullable: c.nullable,
      primaryKey: c.primaryKey,
    })),
    indexes: table.indexes.map((i) => ({ columns: [...i.columns], using: i.using, unique: i.unique })),
  };
}

/**
 * Parses and validates a whole job (envelope and every row). `label` names the batch in errors,
 * e.g. `Batch 3` or `Job 17`. Throws InvalidBatchError naming the batch, row and column.
 */
export function parseBatchJob(input: unknown, label = 'Batch'): { job: BatchJob; tables: IngestTable[] } {
  const result = batchJobSchema.safeParse(plainEnvelope(input, label));
  if (!result.success) {
    const issue = result.error.issues[0];
    const path = issue?.path.map(String).join('.') ?? '';
    const problem = issue ? problemText(issue.message) : 'invalid';
    throw new InvalidBatchError(`${label}: ${path || '(root)'}: ${problem}`, { path });
  }
  const job = result.data;
  let tables: IngestTable[];
  try {
    tables = job.tables.map((t) => defineTable(t));
  } catch (error) {
    throw new InvalidBatchError(`${label}: ${(error as Error).message}`, { path: 'tables' });
  }
  const rows = exactWireRows(tables, job.rows, label);
  validateWireRows(tables, rows, label, 1, job.options.badRows === BadRows.QUARANTINE);
  return { job: { ...job, rows: rows as BatchJob['rows'] }, tables };
}

/**
 * A job read with `parseJsonKeepingNumbers` (the gateway) has every number as a `JsonNumber`:
 * everything but the rows becomes ordinary JavaScript (bigint for an unsafe integer); the rows'
 * numbers are turned into wire values by their columns (`exactWireRows`).
 */
function plainEnvelope(input: unknown, label: string): unknown {
  if (input === null || typeof input !== 'object' || Array.isArray(input)) return input;
  const { rows, highWatermark, metadata, ...envelope } = input as Record<string, unknown>;
  // Refused here, before zod, whose recursion a value nested thousands deep would overflow
  // (test/integration/queue-high-watermark-exact.test.ts). Absent, they are left for zod to report.
  if ('highWatermark' in input) assertStorableJson(highWatermark, `${label}: the high watermark`);
  if (metadata !== undefined) assertStorableJson(metadata, `${label}: the metadata`);
  assertStorableJson(envelope, label);
  if ('highWatermark' in input) envelope.highWatermark = highWatermark;
  if (metadata !== undefined) envelope.metadata = metadata;
  const plain = toPlainJson(envelope) as Record<string, unknown>;
  return rows === undefined ? plain : { ...plain, rows };
}

/**
 * Rows with their `JsonNumber`s as wire values for their columns (wire-numbers.ts); the first is
 * row `firstRow` of its batch.
 */
export function exactWireRows(
  tables: readonly IngestTable[],
  rows: readonly WireRow[],
  label: string,
  firstRow = 1,
): WireRow[] {
  const byKey = new Map(tables.map((t) => [tableKey(t), t]));
  return rows.map(([key, values], i) => {
    const table = byKey.get(key);
    if (!table || values.length !== table.columns.length || !values.some(hasJsonNumber))
      return [key, values] as const; // as it is: validateWireRows names what is wrong
    return [
      key,
      values.map((value, c) => {
        const column = table.columns[c] as IngestTable['columns'][number];
        try {
          return exactWireValue(value, column.parsedType.base, column.parsedType.arrayDimensions);
        } catch (error) {
          if (!(error instanceof WireNumberError)) throw error;
          throw new InvalidBatchError(
            `${label}, row ${firstRow + i} (${key}), column "${column.name}" (${column.type}): ${error.message}`,
            { row: firstRow + i, table: key, column: column.name },
          );
        }
      }),
    ] as const;
  });
}

function hasJsonNumber(value: unknown): boolean {
  return value instanceof JsonNumber || (Array.isArray(value) && value.some(hasJsonNumber));
}

/**
 * Checks each wire row names a table of the batch and each value fits its column's JSON encoding.
 * `keepBadValues` (BadRows.QUARANTINE): a value that does not fit is let through (the Producer
 * then lists its row in the header, and the worker quarantines it with the same reason); the
 * row's structure is still checked.
 */
export function validateWireRows(
  tables: readonly IngestTable[],
  rows: readonly WireRow[],
  label: string,
  firstRow = 1,
  keepBadValues = false,
) {
  const byKey = new Map(tables.map((t) => [tableKey(t), t]));
  rows.forEach(([key, values], i) => {
    const row = firstRow + i;
    const table = byKey.get(key);
    if (!table) {
      throw new InvalidBatchError(
        `${label}, row ${row}: names table "${key}", which is not one of the batch's tables (${[...byKey.keys()].join(', ')})`,
        { row, table: key },
      );
    }
    if (values.length !== table.columns.length) {
      throw new InvalidBatchError(
        `${label}, row ${row} (${key}): has ${values.length} values; the table has ${table.columns.length} columns`,
        { row, table: key },
      );
    }
    if (keepBadValues) return;
    table.columns.forEach((column, c) => {
      const problem = wireValueProblem(column.parsedType, values[c], column.nullable);
      if (problem) {
        throw new InvalidBatchError(
          `${label}, row ${row} (${key}), column "${column.name}" (${column.type}): ${problem}`,
          { row, table: key, column: column.name },
        );
      }
    });
  });
}

export { INTEGER_TYPES, NUMBER_TYPES } from '../ingest/value-rules.ts';

const HEX_BYTEA = /^\\x([0-9a-fA-F]{2})*$/;
const BASE64 = /^[A-Za-z0-9+/]*={0,2}$/;

/** Each type's value rule, made once (types are frozen with their table). */
const rules = new WeakMap<ParsedType, ValueRule | undefined>();

function ruleOf(type: ParsedType): ValueRule | undefined {
  if (rules.has(type)) return rules.get(type);
  const rule = valueRuleFor(type);
  if (Object.isFrozen(type)) rules.set(type, rule);
  return rule;
}

/**
 * Why a wire value cannot go into a column of this type, or undefined if it can: its shape on
 * the wire (checked here), then what PostgreSQL takes (value-rules.ts).
 */
export function wireValueProblem(type: ParsedType, value: unknown, nullable: boolean): string | undefined {
  return elementProblem(type, ruleOf(type), type.arrayDimensions, value, nullable);
}

function elementProblem(
  type: ParsedType,
  rule: ValueRule | undefined,
  arrayDimensions: number,
  value: unknown,
  nullable: boolean,
): string | undefined {
  const base = type.base;
  if (value === null) return nullable ? undefined : 'is null, but the column is NOT NULL';
  if (base === 'json' || base === 'jsonb') return jsonValueProblem(value, base === 'jsonb'); // any JSON value
  if (arrayDimensions > 0) {
    if (!Array.isArray(value)) return `expected an array, got ${typeof value}`;
    for (const item of value) {
      const dimensions = arrayDimensions - (Array.isArray(item) ? 1 : arrayDimensions);
      const problem = elementProblem(type, rule, dimensions, item, true);
      if (problem) return `array item ${problem}`;
    }
    return undefined;
  }
  if (
    INTEGER_TYPES.has(base) &&
    typeof value === 'number' &&
    Number.isInteger(value) &&
    !Number.isSafeInteger(value)
  )
    return 'is an integer beyond 2^53: send it as a string';
  if (base === 'bool' || base === 'boolean')
    return typeof value === 'boolean' ? undefined : `expected true or false, got ${JSON.stringify(value)}`;
  if (base === 'bytea') {
    return typeof value === 'string' &&
      (HEX_BYTEA.test(value) || (value.length % 4 === 0 && BASE64.test(value)))
      ? undefined
      : 'expected base64 or \\x-prefixed hex';
  }
  if (typeof value === 'object' && !INTEGER_TYPES.has(base) && !NUMBER_TYPES.has(base))
    return `expected a string, got ${Array.isArray(value) ? 'an array' : 'an object'}`;
  // text, dates, times, uuid, ...: strings; numbers and booleans print as text
  return (typeof value === 'string' ? stringProblem(value) : undefined) ?? rule?.(value);
}

/** Moved to the core (ingest() stores quarantined rows in the wire format); kept here for the queue. */
export { toWireValue } from '../ingest/wire-value.ts';

/** The inverse, for the worker: only bytea needs decoding; everything else COPY takes as it is. */
export function fromWireValue(base: string, value: unknown): unknown {
  if (base !== 'bytea' || value === null) return value;
  if (Array.isArray(value)) return value.map((v) => fromWireValue(base, v));
  const text = value as string;
  return text.startsWith('\\x') ? text : Buffer.from(text, 'base64');
}
