/**
 * `SchemaChanges.ADDITIVE`: the shape a table grows to so that it takes both its live rows and a
 * batch of this definition, without losing or narrowing anything. Live columns stay in their
 * order, each widened to hold the definition's type too, and NOT NULL only where the definition
 * also says so; the definition's new columns come at the end, always nullable (producers still
 * on the old definition send no value for them); indexes of both are kept. A primary key
 * difference, or two types neither of which holds the other, cannot be merged: the batch fails.
 */
import { SchemaChangeError } from '../../errors.ts';
import { indexKey, type TableShape } from '../live-table.ts';
import { type ParsedType, parsePgType } from '../pg-type.ts';
import { qualifiedName, quoteIdent } from '../sql.ts';
import type { ColumnDefinition, IndexDefinition, IngestTable } from '../table-definition.ts';
import { widerType } from './type-change.ts';

export interface MigrationTarget {
  /** What the live table must become; the batch's own definition, except under ADDITIVE. */
  readonly table: IngestTable;
  readonly shape: TableShape;
}

export function additiveTarget(live: TableShape, wanted: TableShape, table: IngestTable): MigrationTarget {
  const label = qualifiedName(table.schema, table.name);
  const conflicts: string[] = [];
  if (live.primaryKey.join('\0') !== wanted.primaryKey.join('\0')) {
    conflicts.push(
      `primary key: (${live.primaryKey.map(quoteIdent).join(', ')}) in the table, (${wanted.primaryKey.map(quoteIdent).join(', ')}) in the definition`,
    );
  }
  const defined = new Map(wanted.columns.map((c) => [c.name, c]));
  const liveNames = new Set(live.columns.map((c) => c.name));
  const columns = live.columns.map((c) => {
    const mine = defined.get(c.name);
    if (mine === undefined) return { ...c, notNull: false };
    const type = widerType(c.type, mine.type);
    if (type === undefined) {
      conflicts.push(`column ${quoteIdent(c.name)}: ${c.type} in the table, ${mine.type} in the definition`);
    }
    return { name: c.name, type: type ?? c.type, notNull: c.notNull && mine.notNull };
  });
  for (const c of wanted.columns) if (!liveNames.has(c.name)) columns.push({ ...c, notNull: false });
  if (conflicts.length > 0) {
    throw new SchemaChangeError(
      `Table ${label} cannot take this batch under SchemaChanges.ADDITIVE, which never drops or narrows (table vs definition):\n  - ${conflicts.join('\n  - ')}`,
      { table: `${table.schema}.${table.name}` },
      conflicts,
    );
  }
  const indexes: IndexDefinition[] = live.indexDetails.flatMap((i) => (i.definition ? [i.definition] : []));
  const liveKeys = indexes.map((i) => indexKey(i.unique, i.using, i.columns));
  for (const index of table.indexes) {
    const key = indexKey(index.unique, index.using, index.columns);
    const at = liveKeys.indexOf(key);
    if (at >= 0) liveKeys.splice(at, 1);
    else indexes.push(index);
  }
  const merged: IngestTable = {
    schema: table.schema,
    name: table.name,
    columns: columns.map((c) => asColumnDefinition(c, live.primaryKey.includes(c.name))),
    indexes,
    primaryKey: live.primaryKey,
  };
  return {
    table: merged,
    shape: {
      columns,
      primaryKey: live.primaryKey,
      indexes: indexes.map((i) => indexKey(i.unique, i.using, i.columns)).sort(),
      indexDetails: [],
    },
  };
}

function asColumnDefinition(
  c: { name: string; type: string; notNull: boolean },
  primaryKey: boolean,
): ColumnDefinition {
  const parsed = parsePgType(c.type);
  // A type PostgreSQL printed (format_type) may be outside our grammar (a user's enum): it is
  // only ever used in DDL of this table's replacement, never to encode values.
  const parsedType: ParsedType =
    'error' in parsed ? { base: c.type, arrayDimensions: 0, modifiers: [] } : parsed;
  return {
    name: c.name,
    type: c.type,
    nullable: !c.notNull,
    primaryKey,
    unique: false,
    index: false,
    parsedType,
  };
}
