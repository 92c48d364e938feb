/**
 * The tables most tests use: (id integer, value text), keyed by id (upserts) or not (plain
 * inserts). One definition each, so that "a keyed table" means the same in every test.
 */
import { defineTable, type IngestTable, type TableDefinitionInput } from '../../src/index.ts';

const columns = (primaryKey: boolean) => [
  { name: 'id', type: 'integer', primaryKey },
  { name: 'value', type: 'text' },
];

/** (id integer primary key, value text), with `indexes`: by default one on value. */
export function keyedTable(
  schema: string,
  name = 'keyed',
  indexes: TableDefinitionInput['indexes'] = [{ columns: ['value'] }],
): IngestTable {
  return defineTable({ schema, name, columns: columns(true), indexes });
}

/** (id integer, value text): no key, so ingest() inserts plainly. */
export function plainTable(schema: string, name = 'plain'): IngestTable {
  return defineTable({ schema, name, columns: columns(false) });
}
