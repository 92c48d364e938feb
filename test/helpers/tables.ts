/**
 * The tables most tests use: (id integer, value text), keyed by id (upserts) or not (plain
 * inserts); and the quarantine tests' events table, with its rows of which three are bad. One
 * definition each, so that "a keyed table" means the same in every test.
 */
import { defineTable, type IngestTable, type Row, type TableDefinitionInput } from '../../src/index.ts';

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

/** (id integer primary key, at timestamptz, label text NOT NULL): a row can be refused for each column. */
export function eventsTable(schema: string): IngestTable {
  return defineTable({
    schema,
    name: 'events',
    columns: [
      { name: 'id', type: 'integer', primaryKey: true },
      { name: 'at', type: 'timestamptz' },
      { name: 'label', type: 'text', nullable: false },
    ],
  });
}

/**
 * `count` rows (a multiple of 10) of an events table, `[n, timeOf(n), 'row n']`, but for three
 * that PostgreSQL refuses, each for a reason of its own: row count/10 has a bad timestamp, row
 * count/2 a NULL label, row 9·count/10 the key of row 10 again (the last two at `timeOf(0)`).
 */
export function rowsWithThreeBad(
  table: IngestTable,
  count: number,
  timeOf: (n: number) => unknown = () => null,
): Row[] {
  return Array.from({ length: count }, (_, i): Row => {
    const n = i + 1;
    if (n === count / 10) return [table, [n, 'not a time', 'x']];
    if (n === count / 2) return [table, [n, timeOf(0), null]];
    if (n === (count / 10) * 9) return [table, [10, timeOf(0), 'duplicate of row 10']];
    return [table, [n, timeOf(n), `row ${n}`]];
  });
}
