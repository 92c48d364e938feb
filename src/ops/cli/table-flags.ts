/** The table a command works on, from flags: `--table-file def.json`, or `--schema/--table/--columns`. */
import { readFileSync } from 'node:fs';
import { PgBulkIngestError } from '../../errors.ts';
import { defineTable, type IngestTable, type TableDefinitionInput } from '../../ingest/table-definition.ts';

/** The table from --table-file, or from --schema, --table and --columns. */
export function tableFrom(flags: Record<string, unknown>): IngestTable {
  const { tableFile, schema, table, columns } = flags as Record<string, string | undefined>;
  if (tableFile !== undefined) {
    if (schema !== undefined || table !== undefined || columns !== undefined)
      throw optionError('give either --table-file or --schema/--table/--columns, not both');
    let definition: unknown;
    try {
      definition = JSON.parse(readFileSync(tableFile, 'utf8'));
    } catch (error) {
      throw optionError(`--table-file ${tableFile}: ${(error as Error).message}`);
    }
    return defineTable(definition as TableDefinitionInput);
  }
  if (schema === undefined || table === undefined || columns === undefined)
    throw optionError('the table is needed: --table-file def.json, or --schema, --table and --columns');
  return defineTable({ schema, name: table, columns: parseColumns(columns) });
}

/** `id:bigint:pk,price:numeric(12,2):notnull` → column definitions (commas inside parentheses are the type's). */
export function parseColumns(spec: string): TableDefinitionInput['columns'] {
  const items: string[] = [];
  let depth = 0;
  let start = 0;
  for (let i = 0; i <= spec.length; i++) {
    const c = spec[i];
    if (c === '(') depth += 1;
    else if (c === ')') depth -= 1;
    else if ((c === ',' && depth === 0) || c === undefined) {
      items.push(spec.slice(start, i).trim());
      start = i + 1;
    }
  }
  return items.map((item, i) => {
    const [name, type, ...flags] = item.split(':').map((s) => s.trim());
    if (!name || !type)
      throw optionError(
        `--columns: item ${i + 1} "${item}" should be name:type[:pk|:notnull|:unique|:index]`,
      );
    const column = { name, type, primaryKey: false, nullable: true, unique: false, index: false };
    for (const flag of flags) {
      if (flag === 'pk' || flag === 'primary-key') column.primaryKey = true;
      else if (flag === 'notnull' || flag === 'not-null') column.nullable = false;
      else if (flag === 'unique') column.unique = true;
      else if (flag === 'index') column.index = true;
      else
        throw optionError(
          `--columns: column "${name}": unknown flag "${flag}" (expected pk, notnull, unique or index)`,
        );
    }
    return column;
  });
}

function optionError(message: string): PgBulkIngestError {
  return new PgBulkIngestError('INVALID_OPTIONS', message);
}
