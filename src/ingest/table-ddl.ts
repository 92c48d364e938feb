/**
 * DDL built from a validated definition. Identifiers are quoted; type strings have passed the
 * strict grammar in pg-type.ts, so they cannot carry anything but a type.
 */
import { columnList, quoteIdent } from './sql.ts';
import type { IngestTable } from './table-definition.ts';

/** `CREATE TABLE` with columns, NOT NULL and the primary key; other indexes come later (faster after the load). */
export function createTableSql(
  relation: string,
  table: IngestTable,
  options: { temporary?: boolean } = {},
): string {
  const columns = columnsSql(table);
  if (table.primaryKey.length > 0) columns.push(`PRIMARY KEY (${columnList(table.primaryKey)})`);
  return `CREATE ${options.temporary ? 'TEMPORARY ' : ''}TABLE ${relation} (${columns.join(', ')})`;
}

/** Each column as `CREATE TABLE` lists it: name, type and NOT NULL. */
export function columnsSql(table: IngestTable): string[] {
  return table.columns.map((c) => `${quoteIdent(c.name)} ${c.type}${c.nullable ? '' : ' NOT NULL'}`);
}

/** One `CREATE INDEX` per index of the definition. PostgreSQL picks free names for them. */
export function createIndexesSql(relation: string, table: IngestTable): string[] {
  return table.indexes.map(
    (i) =>
      `CREATE ${i.unique ? 'UNIQUE ' : ''}INDEX ON ${relation} USING ${i.using} (${columnList(i.columns)})`,
  );
}
