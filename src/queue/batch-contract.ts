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
import { BadRows, Delete, type Json, SchemaChanges, Upsert, Visibility } from '../ingest/options.ts';
import {
  defineTable,
  type IngestTable,
  type TableDefinitionInput,
  tableDefinitionSchema,
} from '../ingest/table-definition.ts';

export const BATCH_FORMAT_VERSION = 1;

const jsonValue: z.ZodType<Json> = z.lazy(() =>
  z.union([
    z.string(),
    z.number(),
    z.boolean(),
    z.null(),
    z.array(jsonValue),
    z.record(z.string(), jsonValue),
  ]),
);

export const batchOptionsSchema = z.strictObject({
  /** @default '__IF_PRIMARY_KEY__' */
  upsert: z.enum([Upsert.IF_PRIMARY_KEY, Upsert.OFF]).default(Upsert.IF_PRIMARY_KEY),
  /** @default '__OFF__' */
  delete: z.enum([Delete.OFF, Delete.BEFORE_FIRST_BATCH]).default(Delete.OFF),
  /** @default '__AFTER_EACH_BATCH__' */
  visibility: z.enum([Visibility.AFTER_EACH_BATCH]).default(Visibility.AFTER_EACH_BATCH),
  /** @default '__APPLY__' */
  schemaChanges: z
    .enum([SchemaChanges.APPLY, SchemaChanges.ADDITIVE, SchemaChanges.FREEZE])
    .default(SchemaChanges.APPLY),
  /** @default '__FAIL__' */
  badRows: z.enum([BadRows.FAIL, BadRows.QUARANTINE]).default(BadRows.FAIL),
  /** @default 1000 */
  maxBadRows: z.int().min(0).default(1000),
});

/** A row on the wire: `["schema.table", [value, ...]]`, values in column order, encoded per type. */
export const wireRowSchema = z.tuple([z.string(), z.array(z.unknown())]);

export const batchJobSchema = z.strictObject({
  /** Format version; a worker refuses versions it does not know. */
  version: z
    .literal(BATCH_FORMAT_VERSION)
    .describe('Format version; a worker refuses versions it does not know'),
  /** The stream this batch belongs to. @default "<schema>.<table>" of the first table */
  stream: z
    .string()
    .min(1)
    .max(512)
    .optional()
    .describe('The ordered stream this batch belongs to; default "<schema>.<table>" of the first table'),
  /** Idempotency key: enqueueing the same batchId twice on a stream enqueues it once. @default a random UUID */
  batchId: z
    .string()
    .min(1)
    .max(200)
    .optional()
    .describe('Idempotency key: the same batchId enqueued twice on a stream is enqueued once'),
  tables: z
    .array(tableDefinitionSchema)
    .min(1)
    .describe('Table definitions, as defineTable() takes them; the first holds the high watermark'),
  highWatermark: jsonValue.describe("Stored in the first table's comment when the batch commits"),
  metadata: jsonValue.default(null).describe('Passed to onBeforeVisible; not stored'),
  rows: z.array(wireRowSchema).describe('["schema.table", [values in column order]] per row'),
  options: batchOptionsSchema.default({
    upsert: Upsert.IF_PRIMARY_KEY,
    delete: Delete.OFF,
    visibility: Visibility.AFTER_EACH_BATCH,
    schemaChanges: SchemaChanges.APPLY,
    badRows: BadRows.FAIL,
    maxBadRows: 1000,
  }),
});

export type BatchJobInput = z.input<typeof batchJobSchema>;
export type BatchJob = z.output<typeof batchJobSchema>;
export type BatchOptions = z.output<typeof batchOptionsSchema>;
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
  const result = batchJobSchema.safeParse(input);
  if (!result.success) {
    const issue = result.error.issues[0];
    const path = issue?.path.map(String).join('.') ?? '';
    throw new InvalidBatchError(`${label}: ${path || '(root)'}: ${issue?.message ?? 'invalid'}`, { path });
  }
  const job = result.data;
  let tables: IngestTable[];
  try {
    tables = job.tables.map((t) => defineTable(t));
  } catch (error) {
    throw new InvalidBatchError(`${label}: ${(error as Error).message}`, { path: 'tables' });
  }
  validateWireRows(tables, job.rows, label, 1, job.options.badRows === BadRows.QUARANTINE);
  return { job, tables };
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
      const problem = wireValueProblem(
        column.parsedType.base,
        column.parsedType.arrayDimensions,
        values[c],
        column.nullable,
      );
      if (problem) {
        throw new InvalidBatchError(
          `${label}, row ${row} (${key}), column "${column.name}" (${column.type}): ${problem}`,
          { row, table: key, column: column.name },
        );
      }
    });
  });
}

/** Base types whose wire value is an integer (or a string of digits). */
export const INTEGER_TYPES: ReadonlySet<string> = new Set([
  'smallint',
  'int2',
  'integer',
  'int',
  'int4',
  'bigint',
  'int8',
  'oid',
]);
/** Base types whose wire value is a number (or a numeric string). */
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
const INTEGER_TEXT = /^[+-]?\d+$/;
const NUMBER_TEXT = /^([+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?|[+-]?Infinity|NaN)$/;
const HEX_BYTEA = /^\\x([0-9a-fA-F]{2})*$/;
const BASE64 = /^[A-Za-z0-9+/]*={0,2}$/;

/** Why a wire value cannot go into a column, or undefined if it can. */
export function wireValueProblem(
  base: string,
  arrayDimensions: number,
  value: unknown,
  nullable: boolean,
): string | undefined {
  if (value === null) return nullable ? undefined : 'is null, but the column is NOT NULL';
  if (base === 'json' || base === 'jsonb') return undefined; // any JSON value
  if (arrayDimensions > 0) {
    if (!Array.isArray(value)) return `expected an array, got ${typeof value}`;
    for (const item of value) {
      const problem = wireValueProblem(
        base,
        arrayDimensions - (Array.isArray(item) ? 1 : arrayDimensions),
        item,
        true,
      );
      if (problem) return `array item ${problem}`;
    }
    return undefined;
  }
  if (INTEGER_TYPES.has(base)) {
    if (typeof value === 'number' && Number.isInteger(value))
      return Number.isSafeInteger(value) ? undefined : 'is an integer beyond 2^53: send it as a string';
    return typeof value === 'string' && INTEGER_TEXT.test(value)
      ? undefined
      : `expected an integer or a string of digits, got ${JSON.stringify(value)}`;
  }
  if (NUMBER_TYPES.has(base)) {
    if (typeof value === 'number') return undefined;
    return typeof value === 'string' && NUMBER_TEXT.test(value)
      ? undefined
      : `expected a number or a numeric string, got ${JSON.stringify(value)}`;
  }
  if (base === 'bool' || base === 'boolean')
    return typeof value === 'boolean' ? undefined : `expected true or false, got ${JSON.stringify(value)}`;
  if (base === 'bytea') {
    return typeof value === 'string' &&
      (HEX_BYTEA.test(value) || (value.length % 4 === 0 && BASE64.test(value)))
      ? undefined
      : 'expected base64 or \\x-prefixed hex';
  }
  if (typeof value === 'object')
    return `expected a string, got ${Array.isArray(value) ? 'an array' : 'an object'}`;
  return undefined; // text, dates, times, uuid, ...: strings (PostgreSQL parses them); numbers and booleans print as text
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
