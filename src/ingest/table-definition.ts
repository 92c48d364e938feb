import { z } from 'zod';
import { TableDefinitionError } from '../errors.ts';
import { type ParsedType, parsePgType } from './pg-type.ts';
import { MAX_IDENTIFIER_BYTES, qualifiedName } from './sql.ts';

const identifier = z
  .string()
  .min(1, 'must not be empty')
  .refine((s) => !s.includes('\0'), 'must not contain a NUL character')
  .refine(
    (s) => Buffer.byteLength(s) <= MAX_IDENTIFIER_BYTES,
    `must be at most ${MAX_IDENTIFIER_BYTES} bytes long (PostgreSQL would truncate it)`,
  );

const pgType = z.string().superRefine((value, ctx) => {
  const parsed = parsePgType(value);
  if ('error' in parsed) ctx.addIssue({ code: 'custom', message: `"${value}" ${parsed.error}` });
});

export const INDEX_METHODS = ['btree', 'hash', 'gin', 'gist', 'brin', 'spgist'] as const;

/** A column as `defineTable` accepts it. */
export const columnDefinitionSchema = z.strictObject({
  name: identifier,
  /** A PostgreSQL type such as `integer`, `varchar(16)`, `numeric(12,2)`, `text[]`. */
  type: pgType,
  /** @default true */
  nullable: z.boolean().default(true),
  /** Part of the primary key, in column order. @default false */
  primaryKey: z.boolean().default(false),
  /** A unique index on this column alone. @default false */
  unique: z.boolean().default(false),
  /** A btree index on this column alone. @default false */
  index: z.boolean().default(false),
});

export const indexDefinitionSchema = z.strictObject({
  columns: z.array(identifier).min(1, 'must name at least one column'),
  /** @default 'btree' */
  using: z.enum(INDEX_METHODS).default('btree'),
  /** @default false */
  unique: z.boolean().default(false),
});

export const tableDefinitionSchema = z
  .strictObject({
    schema: identifier,
    name: identifier,
    columns: z.array(columnDefinitionSchema).min(1, 'must have at least one column'),
    /** Indexes on one or more columns, besides the columns' own `unique`/`index`; the library names them. @default [] */
    indexes: z.array(indexDefinitionSchema).default([]),
  })
  .superRefine((table, ctx) => {
    const seen = new Set<string>();
    table.columns.forEach((column, i) => {
      if (seen.has(column.name)) {
        ctx.addIssue({
          code: 'custom',
          path: ['columns', i, 'name'],
          message: `duplicate column "${column.name}"`,
        });
      }
      seen.add(column.name);
    });
    table.indexes.forEach((index, i) => {
      index.columns.forEach((name, j) => {
        if (!seen.has(name)) {
          ctx.addIssue({
            code: 'custom',
            path: ['indexes', i, 'columns', j],
            message: `names missing column "${name}"`,
          });
        }
      });
    });
  });

export type TableDefinitionInput = z.input<typeof tableDefinitionSchema>;

export interface ColumnDefinition {
  readonly name: string;
  readonly type: string;
  readonly nullable: boolean;
  readonly primaryKey: boolean;
  readonly unique: boolean;
  readonly index: boolean;
  /** The type as parsed by the grammar: base name and array dimensions. */
  readonly parsedType: ParsedType;
}

export interface IndexDefinition {
  readonly columns: readonly string[];
  readonly using: (typeof INDEX_METHODS)[number];
  readonly unique: boolean;
}

/** A validated table, as returned by `defineTable`. Plain, frozen, JSON-serialisable properties. */
export interface IngestTable {
  readonly schema: string;
  readonly name: string;
  readonly columns: readonly ColumnDefinition[];
  /** Every index the table should have, column-level `unique`/`index` flags included. */
  readonly indexes: readonly IndexDefinition[];
  /** Primary key columns, in column order; empty when there is none. */
  readonly primaryKey: readonly string[];
}

/** Validates a table definition; throws `TableDefinitionError` naming the table and the field. */
export function defineTable(definition: TableDefinitionInput): IngestTable {
  const result = tableDefinitionSchema.safeParse(definition);
  if (!result.success) {
    const raw = definition as { schema?: unknown; name?: unknown } | null | undefined;
    const where =
      typeof raw?.schema === 'string' && typeof raw?.name === 'string'
        ? `Table ${qualifiedName(raw.schema, raw.name)}`
        : 'Table definition';
    const issue = result.error.issues[0];
    const path = issue ? formatPath(issue.path) : '';
    const message = result.error.issues
      .map((i) => `${formatPath(i.path) || '(root)'}: ${i.message}`)
      .join('; ');
    throw new TableDefinitionError(`${where}: ${message}`, {
      table: where === 'Table definition' ? undefined : `${raw?.schema}.${raw?.name}`,
      path,
    });
  }
  const table = result.data;
  const columns = table.columns.map((c) => {
    const parsedType = parsePgType(c.type) as ParsedType; // valid: the schema checked it
    // A primary key column is NOT NULL in PostgreSQL whatever the definition says: keep it honest.
    const nullable = c.nullable && !c.primaryKey;
    return Object.freeze({ ...c, nullable, parsedType: Object.freeze(parsedType) });
  });
  const indexes: IndexDefinition[] = [
    ...columns
      .filter((c) => c.unique)
      .map((c) => ({ columns: [c.name], using: 'btree' as const, unique: true })),
    ...columns
      .filter((c) => c.index)
      .map((c) => ({ columns: [c.name], using: 'btree' as const, unique: false })),
    ...table.indexes,
  ];
  return Object.freeze({
    schema: table.schema,
    name: table.name,
    columns: Object.freeze(columns),
    indexes: Object.freeze(
      indexes.map((i) => Object.freeze({ ...i, columns: Object.freeze([...i.columns]) })),
    ),
    primaryKey: Object.freeze(columns.filter((c) => c.primaryKey).map((c) => c.name)),
  });
}

function formatPath(path: readonly PropertyKey[]): string {
  return path
    .map((p, i) => (typeof p === 'number' ? `[${p}]` : `${i === 0 ? '' : '.'}${String(p)}`))
    .join('');
}
