/**
 * The differences between a live table and the shape it should have, one by one, each in words
 * (for reports, logs and the `SchemaChanges.FREEZE` error) and each with whether PostgreSQL can
 * apply it without rewriting or scanning the table.
 */
import type { LiveIndex, TableShape } from '../live-table.ts';
import { quoteIdent } from '../sql.ts';
import { changesWithoutRewrite } from './type-change.ts';

type Column = TableShape['columns'][number];

export type Difference =
  | { readonly kind: 'column-added'; readonly column: Column; readonly atEnd: boolean }
  | { readonly kind: 'column-dropped'; readonly column: Column }
  | { readonly kind: 'column-type'; readonly name: string; readonly from: string; readonly to: string }
  | { readonly kind: 'column-null'; readonly name: string; readonly toNotNull: boolean }
  | { readonly kind: 'column-order'; readonly from: readonly string[]; readonly to: readonly string[] }
  | { readonly kind: 'primary-key'; readonly from: readonly string[]; readonly to: readonly string[] }
  | { readonly kind: 'index-added'; readonly key: string }
  | { readonly kind: 'index-dropped'; readonly index: LiveIndex };

export function diffShapes(live: TableShape, wanted: TableShape): Difference[] {
  const differences: Difference[] = [];
  const liveColumns = new Map(live.columns.map((c) => [c.name, c]));
  const wantedNames = new Set(wanted.columns.map((c) => c.name));
  for (const column of live.columns) {
    if (!wantedNames.has(column.name)) differences.push({ kind: 'column-dropped', column });
  }
  const lastKept = wanted.columns.findLastIndex((c) => liveColumns.has(c.name));
  wanted.columns.forEach((column, i) => {
    const was = liveColumns.get(column.name);
    if (was === undefined) {
      differences.push({ kind: 'column-added', column, atEnd: i > lastKept });
      return;
    }
    if (was.type !== column.type)
      differences.push({ kind: 'column-type', name: column.name, from: was.type, to: column.type });
    if (was.notNull !== column.notNull)
      differences.push({ kind: 'column-null', name: column.name, toNotNull: column.notNull });
  });
  const keptInLiveOrder = live.columns.filter((c) => wantedNames.has(c.name)).map((c) => c.name);
  const keptInWantedOrder = wanted.columns.filter((c) => liveColumns.has(c.name)).map((c) => c.name);
  if (keptInLiveOrder.join('\0') !== keptInWantedOrder.join('\0'))
    differences.push({ kind: 'column-order', from: keptInLiveOrder, to: keptInWantedOrder });
  if (live.primaryKey.join('\0') !== wanted.primaryKey.join('\0'))
    differences.push({ kind: 'primary-key', from: live.primaryKey, to: wanted.primaryKey });
  // Indexes as multisets: a definition may want two identical indexes, a table may have them.
  const unmatched = [...wanted.indexes];
  for (const index of live.indexDetails) {
    const i = unmatched.indexOf(index.key);
    if (i >= 0) unmatched.splice(i, 1);
    else differences.push({ kind: 'index-dropped', index });
  }
  for (const key of unmatched) differences.push({ kind: 'index-added', key });
  return differences;
}

/** One line per difference, table vs definition. */
export function describeDifference(d: Difference): string {
  switch (d.kind) {
    case 'column-added':
      return `column ${describeColumn(d.column)}: in the definition${d.atEnd ? '' : ' (not at the end)'}, not in the table`;
    case 'column-dropped':
      return `column ${describeColumn(d.column)}: in the table, not in the definition`;
    case 'column-type':
      return `column ${quoteIdent(d.name)}: ${d.from} in the table, ${d.to} in the definition`;
    case 'column-null':
      return `column ${quoteIdent(d.name)}: ${d.toNotNull ? 'nullable' : 'NOT NULL'} in the table, ${d.toNotNull ? 'NOT NULL' : 'nullable'} in the definition`;
    case 'column-order':
      return `column order: (${d.from.map(quoteIdent).join(', ')}) in the table, (${d.to.map(quoteIdent).join(', ')}) in the definition`;
    case 'primary-key':
      return `primary key: (${d.from.map(quoteIdent).join(', ')}) in the table, (${d.to.map(quoteIdent).join(', ')}) in the definition`;
    case 'index-added':
      return `index ${describeIndexKey(d.key)}: in the definition, not in the table`;
    case 'index-dropped':
      return `index ${quoteIdent(d.index.name)} ${describeIndexKey(d.index.key)}: in the table, not in the definition`;
  }
}

/**
 * Why PostgreSQL cannot apply `d` in place (without a rewrite, a scan, or dropping what depends
 * on it), or null when it can. `dependents` are the live columns that views, rules, triggers or
 * constraints other than the table's own indexes depend on: ALTER would refuse to drop or
 * retype them (and a retype re-checks CHECK constraints, a scan).
 */
export function rebuildReason(d: Difference, dependents: ReadonlySet<string>): string | null {
  switch (d.kind) {
    case 'column-added':
      if (!d.atEnd) return 'a column added before existing ones';
      return d.column.notNull ? 'a NOT NULL column added (existing rows have no value)' : null;
    case 'column-dropped':
      return dependents.has(d.column.name)
        ? `column ${quoteIdent(d.column.name)} has dependent objects`
        : null;
    case 'column-type':
      if (!changesWithoutRewrite(d.from, d.to)) return `${d.from} → ${d.to} rewrites the table`;
      return dependents.has(d.name) ? `column ${quoteIdent(d.name)} has dependent objects` : null;
    case 'column-null':
      return d.toNotNull ? 'SET NOT NULL scans the table' : null;
    case 'column-order':
      return 'columns reordered';
    case 'primary-key':
      return 'the primary key changed';
    case 'index-added':
      return null;
    case 'index-dropped':
      if (d.index.referenced) return `a foreign key references index ${quoteIdent(d.index.name)}`;
      if (d.index.constraint?.type === 'x')
        return `index ${quoteIdent(d.index.name)} backs an exclusion constraint`;
      return null;
  }
}

function describeColumn(c: Column): string {
  return `${quoteIdent(c.name)} ${c.type}${c.notNull ? ' NOT NULL' : ''}`;
}

/** `unique|btree|"a","b"` → `unique btree ("a","b")`. */
function describeIndexKey(key: string): string {
  const [kind = '', method = '', columns] = key.split('|');
  if (kind === 'expression') return `(expression or partial, ${method})`;
  if (kind === 'invalid') return '(invalid: left by a failed CREATE INDEX CONCURRENTLY)';
  return `${kind === 'unique' ? 'unique ' : ''}${method} (${columns ?? ''})`;
}
