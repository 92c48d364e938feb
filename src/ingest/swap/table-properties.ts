/**
 * Everything else a user attaches to a table, carried onto its replacement: comments (table
 * and columns), row-level security (flags and policies), triggers (and whether each is
 * enabled), storage parameters (the table's and its TOAST table's), per-column statistics
 * targets and options, replica identity, and publication membership. A table dropped from its
 * publication silently stops being replicated, so that one matters most.
 *
 * Column-level properties are carried for the columns the replacement still has. Policies,
 * triggers and row filters are re-created from their definitions as PostgreSQL prints them: one
 * that names a column the replacement no longer has fails the batch rather than vanish.
 */

import type pg from 'pg';
import { InvariantError } from '../../errors.ts';
import { qualifiedName, quoteIdent, tableCatalogRow } from '../sql.ts';
import { columnNames } from './table-privileges.ts';

export interface TableProperties {
  readonly commentLiteral: string | null;
  readonly rowSecurity: boolean;
  readonly forceRowSecurity: boolean;
  /** `CREATE POLICY` statements, naming the table as it is named (the replacement has its name by then). */
  readonly policies: readonly string[];
  /** `CREATE TRIGGER` statements, with `tgenabled` (O origin, D disabled, R replica, A always). */
  readonly triggers: readonly {
    readonly name: string;
    readonly definition: string;
    readonly enabled: string;
  }[];
  /** `reloptions` of the table and `toast.`-prefixed ones of its TOAST table, values quoted. */
  readonly options: readonly { readonly name: string; readonly value: string }[];
  readonly columns: readonly {
    readonly name: string;
    readonly commentLiteral: string | null;
    /** -1: the default. */
    readonly statisticsTarget: number;
    /** The user-settable `attoptions` (n_distinct, n_distinct_inherited); a server may add its own. */
    readonly options: readonly { readonly name: string; readonly value: string }[];
  }[];
  /** `d` default, `n` nothing, `f` full, `i` index (then `identityColumns`). */
  readonly replicaIdentity: string;
  readonly identityColumns: readonly string[] | null;
  /** `ALTER PUBLICATION ... ADD TABLE` clauses: column list and row filter, as in pg_publication_rel. */
  readonly publications: readonly {
    readonly name: string;
    readonly columns: string[] | null;
    readonly rowFilter: string | null;
  }[];
}

/**
 * -- table-properties: what `TableProperties` lists, for one table.
 * Input: $1 table oid. Output: one row. Internal triggers (those of foreign keys) are left out:
 * foreign keys are added again by the swap, and bring their own.
 */
const TABLE_PROPERTIES_SQL = `
  SELECT quote_literal(obj_description(c.oid, 'pg_class')) AS "commentLiteral",
    c.relrowsecurity AS "rowSecurity", c.relforcerowsecurity AS "forceRowSecurity",
    ARRAY(SELECT format('CREATE POLICY %I ON %I.%I AS %s FOR %s TO %s%s%s', p.policyname, p.schemaname, p.tablename,
                   p.permissive, p.cmd,
                   (SELECT string_agg(CASE WHEN r = 'public' THEN 'PUBLIC' ELSE quote_ident(r) END, ', ') FROM unnest(p.roles) AS r),
                   ' USING (' || p.qual || ')', ' WITH CHECK (' || p.with_check || ')')
            FROM pg_policies AS p JOIN pg_namespace AS n ON n.nspname = p.schemaname
           WHERE n.oid = c.relnamespace AND p.tablename = c.relname ORDER BY p.policyname) AS policies,
    (SELECT coalesce(json_agg(json_build_object('name', t.tgname, 'definition', pg_get_triggerdef(t.oid),
                     'enabled', t.tgenabled) ORDER BY t.tgname), '[]'::json)
       FROM pg_trigger AS t WHERE t.tgrelid = c.oid AND NOT t.tgisinternal) AS triggers,
    (SELECT coalesce(json_agg(json_build_object('name', o.name, 'value', quote_literal(o.value))), '[]'::json) FROM (
       SELECT option_name AS name, option_value AS value FROM pg_options_to_table(c.reloptions)
       UNION ALL
       SELECT 'toast.' || option_name, option_value
         FROM pg_class AS toast, pg_options_to_table(toast.reloptions) WHERE toast.oid = c.reltoastrelid) AS o) AS options,
    (SELECT coalesce(json_agg(json_build_object('name', a.attname,
              'commentLiteral', quote_literal(col_description(c.oid, a.attnum)),
              'statisticsTarget', a.attstattarget,
              'options', (SELECT coalesce(json_agg(json_build_object('name', o.option_name, 'value', quote_literal(o.option_value))), '[]'::json)
                            FROM pg_options_to_table(a.attoptions) AS o
                           WHERE o.option_name IN ('n_distinct', 'n_distinct_inherited'))) ORDER BY a.attnum), '[]'::json)
       FROM pg_attribute AS a WHERE a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped) AS columns,
    c.relreplident AS "replicaIdentity",
    (SELECT ARRAY(SELECT a.attname::text FROM unnest(i.indkey::int2[]) WITH ORDINALITY AS k(attnum, ord)
                    JOIN pg_attribute AS a ON a.attrelid = c.oid AND a.attnum = k.attnum ORDER BY k.ord)
       FROM pg_index AS i WHERE i.indrelid = c.oid AND i.indisreplident) AS "identityColumns",
    (SELECT coalesce(json_agg(json_build_object('name', pub.pubname,
              'columns', (SELECT json_agg(a.attname ORDER BY k.ord) FROM unnest(pr.prattrs::int2[]) WITH ORDINALITY AS k(attnum, ord)
                            JOIN pg_attribute AS a ON a.attrelid = c.oid AND a.attnum = k.attnum),
              'rowFilter', pg_get_expr(pr.prqual, pr.prrelid)) ORDER BY pub.pubname), '[]'::json)
       FROM pg_publication_rel AS pr JOIN pg_publication AS pub ON pub.oid = pr.prpubid WHERE pr.prrelid = c.oid) AS publications
  FROM pg_class AS c WHERE c.oid = $1::oid`;

export function captureTableProperties(client: pg.ClientBase, tableOid: number): Promise<TableProperties> {
  return tableCatalogRow<TableProperties>(client, TABLE_PROPERTIES_SQL, tableOid);
}

/** Applies `properties` to `schema.name`, the replacement under the live table's name, as its owner (before the owner changes). */
export async function restoreTableProperties(
  client: pg.ClientBase,
  schema: string,
  name: string,
  properties: TableProperties,
): Promise<void> {
  const relation = qualifiedName(schema, name);
  const kept = await columnNames(client, relation);
  if (properties.commentLiteral !== null)
    await client.query(`COMMENT ON TABLE ${relation} IS ${properties.commentLiteral}`);
  for (const column of properties.columns) {
    if (!kept.has(column.name)) continue;
    const col = quoteIdent(column.name);
    if (column.commentLiteral !== null)
      await client.query(`COMMENT ON COLUMN ${relation}.${col} IS ${column.commentLiteral}`);
    if (column.statisticsTarget >= 0)
      await client.query(
        `ALTER TABLE ${relation} ALTER COLUMN ${col} SET STATISTICS ${Number(column.statisticsTarget)}`,
      );
    if (column.options.length > 0)
      await client.query(`ALTER TABLE ${relation} ALTER COLUMN ${col} SET (${optionList(column.options)})`);
  }
  if (properties.options.length > 0)
    await client.query(`ALTER TABLE ${relation} SET (${optionList(properties.options)})`);
  for (const policy of properties.policies) await client.query(policy);
  if (properties.rowSecurity) await client.query(`ALTER TABLE ${relation} ENABLE ROW LEVEL SECURITY`);
  if (properties.forceRowSecurity) await client.query(`ALTER TABLE ${relation} FORCE ROW LEVEL SECURITY`);
  for (const trigger of properties.triggers) {
    await client.query(trigger.definition);
    const state = TRIGGER_STATES[trigger.enabled];
    if (state) await client.query(`ALTER TABLE ${relation} ${state} TRIGGER ${quoteIdent(trigger.name)}`);
  }
  await restoreReplicaIdentity(client, relation, properties);
  for (const publication of properties.publications) {
    const columns =
      publication.columns === null ? '' : ` (${publication.columns.map(quoteIdent).join(', ')})`;
    const where = publication.rowFilter === null ? '' : ` WHERE (${publication.rowFilter})`;
    await client.query(
      `ALTER PUBLICATION ${quoteIdent(publication.name)} ADD TABLE ${relation}${columns}${where}`,
    );
  }
}

const TRIGGER_STATES: Record<string, string> = { D: 'DISABLE', R: 'ENABLE REPLICA', A: 'ENABLE ALWAYS' };

/** `USING INDEX` names the replacement's unique index on the same columns, whatever it is called. */
async function restoreReplicaIdentity(client: pg.ClientBase, relation: string, properties: TableProperties) {
  const identity = properties.replicaIdentity;
  if (identity === 'd') return;
  if (identity === 'n' || identity === 'f') {
    await client.query(`ALTER TABLE ${relation} REPLICA IDENTITY ${identity === 'n' ? 'NOTHING' : 'FULL'}`);
    return;
  }
  const { rows } = await client.query<{ name: string }>(
    `SELECT ic.relname::text AS name FROM pg_index i JOIN pg_class ic ON ic.oid = i.indexrelid
      WHERE i.indrelid = $1::regclass AND i.indisunique AND i.indpred IS NULL AND i.indexprs IS NULL
        AND ARRAY(SELECT a.attname::text FROM unnest(i.indkey::int2[]) WITH ORDINALITY AS k(attnum, ord)
                    JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum ORDER BY k.ord) = $2::text[]
      ORDER BY i.indisprimary DESC LIMIT 1`,
    [relation, properties.identityColumns ?? []],
  );
  const index = rows[0]?.name;
  // No such index on the replacement (the definition dropped it): the default identity remains.
  if (index !== undefined)
    await client.query(`ALTER TABLE ${relation} REPLICA IDENTITY USING INDEX ${quoteIdent(index)}`);
}

/** Option names are keywords (`fillfactor`, `toast.autovacuum_enabled`, `n_distinct`); values come quoted. */
function optionList(options: readonly { name: string; value: string }[]): string {
  return options
    .map(({ name, value }) => {
      if (!/^[a-z_][a-z0-9_]*(\.[a-z_][a-z0-9_]*)?$/.test(name))
        throw new InvariantError(`Expected a storage option name such as \`fillfactor\`, got \`${name}\``);
      return `${name} = ${value}`;
    })
    .join(', ');
}
