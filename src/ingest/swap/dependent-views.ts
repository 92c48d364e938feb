/**
 * The views that read a table, captured before `DROP TABLE ... CASCADE` and created again
 * afterwards on the table that took its name. PostgreSQL binds a view to a table's oid, not
 * its name, so a table swap cannot keep them.
 */

import type pg from 'pg';
import { InvariantError } from '../../errors.ts';
import { qualifiedName, quoteIdent } from '../sql.ts';

/** One privilege on a relation, as `aclexplode(relacl)` lists it. */
export interface Grant {
  /** Role name, or `null` for PUBLIC. */
  readonly grantee: string | null;
  readonly privilege: string;
  readonly grantable: boolean;
}

export interface DependentView {
  readonly oid: string;
  readonly schema: string;
  readonly name: string;
  readonly materialized: boolean;
  /** `pg_get_viewdef`: a SELECT, relations qualified unless on the session's search_path. */
  readonly definition: string;
  /** A materialized view created `WITH NO DATA` stays so. */
  readonly populated: boolean;
  readonly owner: string;
  /** The owner differs from us and we may act as it, so `ALTER ... OWNER TO` will succeed. */
  readonly restoreOwner: boolean;
  /** `reloptions` (check_option, security_barrier, fillfactor...), values quoted by PostgreSQL. */
  readonly options: readonly { readonly name: string; readonly value: string }[];
  readonly commentLiteral: string | null;
  readonly columns: readonly ViewColumn[];
  readonly grants: readonly Grant[];
  /** `CREATE INDEX`, `CREATE TRIGGER` and `CREATE RULE` statements of what hangs off the view. */
  readonly attached: readonly string[];
  /** Oids of the other captured views this one reads. */
  readonly reads: readonly string[];
}

interface ViewColumn {
  readonly name: string;
  /** `format_type`: SQL for the type with its modifier, e.g. `character varying(16)`. */
  readonly type: string;
  /** Quoted collation, only where it differs from the type's default. */
  readonly collation: string | null;
  readonly commentLiteral: string | null;
}

/** `aclexplode(c.relacl)` of the relation aliased `c`, as a JSON array of `Grant`. */
export const GRANTS_OF_C = `(
  SELECT coalesce(json_agg(json_build_object(
    'grantee', CASE WHEN a.grantee = 0 THEN NULL ELSE pg_get_userbyid(a.grantee) END,
    'privilege', a.privilege_type,
    'grantable', a.is_grantable) ORDER BY a.grantee, a.privilege_type), '[]'::json)
  FROM aclexplode(c.relacl) AS a)`;

/**
 * Dependent views.
 * Input: $1 oid of a table.
 * Output: one row per view or materialized view that reads $1, directly or through other
 *   views, with all that is needed to create it again (see `DependentView`).
 * How: a view reads a relation when its `_RETURN` rule (pg_rewrite) has a normal pg_depend
 *   entry on it, or on its row type (`NULL::t`). The recursion uses UNION, not UNION ALL, so a
 *   view already found is not followed again: it ends even on a cycle of views.
 */
const DEPENDENT_VIEWS = `
  WITH RECURSIVE view_reads AS (
    SELECT DISTINCT r.ev_class AS view_oid, coalesce(t.typrelid, d.refobjid) AS read_oid
    FROM pg_rewrite AS r
    JOIN pg_depend AS d ON d.classid = 'pg_rewrite'::regclass AND d.objid = r.oid AND d.deptype = 'n'
    LEFT JOIN pg_type AS t ON d.refclassid = 'pg_type'::regclass AND t.oid = d.refobjid
    WHERE r.rulename = '_RETURN'
      AND (d.refclassid = 'pg_class'::regclass OR t.typrelid <> 0)
      AND coalesce(t.typrelid, d.refobjid) <> r.ev_class
  ), dependents (oid) AS (
    SELECT $1::oid
    UNION
    SELECT v.view_oid FROM dependents JOIN view_reads AS v ON v.read_oid = dependents.oid
  ), me AS (
    SELECT oid, rolsuper FROM pg_roles WHERE rolname = current_user
  )
  SELECT c.oid::text AS oid, n.nspname AS schema, c.relname AS name, c.relkind = 'm' AS materialized,
    pg_get_viewdef(c.oid) AS definition, c.relispopulated AS populated,
    pg_get_userbyid(c.relowner) AS owner,
    c.relowner <> me.oid AND pg_has_role(c.relowner, 'USAGE')
      AND (me.rolsuper OR has_schema_privilege(c.relowner, c.relnamespace, 'CREATE')) AS "restoreOwner",
    (SELECT coalesce(json_agg(json_build_object('name', o.option_name, 'value', quote_literal(o.option_value))),
        '[]'::json)
      FROM pg_options_to_table(c.reloptions) AS o) AS options,
    quote_literal(obj_description(c.oid, 'pg_class')) AS "commentLiteral",
    (SELECT coalesce(json_agg(json_build_object(
        'name', a.attname,
        'type', format_type(a.atttypid, a.atttypmod),
        'collation', CASE WHEN a.attcollation <> ty.typcollation THEN format('%I.%I', cn.nspname, co.collname) END,
        'commentLiteral', quote_literal(col_description(c.oid, a.attnum))) ORDER BY a.attnum), '[]'::json)
      FROM pg_attribute AS a
      JOIN pg_type AS ty ON ty.oid = a.atttypid
      LEFT JOIN pg_collation AS co ON co.oid = a.attcollation
      LEFT JOIN pg_namespace AS cn ON cn.oid = co.collnamespace
      WHERE a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped) AS columns,
    ${GRANTS_OF_C} AS grants,
    ARRAY(
      SELECT pg_get_indexdef(i.indexrelid) FROM pg_index AS i WHERE i.indrelid = c.oid
      UNION ALL
      SELECT pg_get_triggerdef(tg.oid) FROM pg_trigger AS tg WHERE tg.tgrelid = c.oid AND NOT tg.tgisinternal
      UNION ALL
      SELECT pg_get_ruledef(ru.oid) FROM pg_rewrite AS ru WHERE ru.ev_class = c.oid AND ru.rulename <> '_RETURN'
    ) AS attached,
    ARRAY(
      SELECT v.read_oid::text FROM view_reads AS v
      WHERE v.view_oid = c.oid AND v.read_oid <> $1::oid AND v.read_oid IN (SELECT oid FROM dependents)
    ) AS reads
  FROM dependents
  JOIN pg_class AS c ON c.oid = dependents.oid
  JOIN pg_namespace AS n ON n.oid = c.relnamespace
  CROSS JOIN me
  WHERE c.oid <> $1::oid AND c.relkind IN ('v', 'm')
  ORDER BY n.nspname, c.relname`;

export async function captureDependentViews(
  client: pg.ClientBase,
  tableOid: number,
): Promise<DependentView[]> {
  const { rows } = await client.query<DependentView>(DEPENDENT_VIEWS, [tableOid]);
  return rows;
}

/**
 * Creates `views` again, each after the views it reads. The views of a cycle are first
 * created as placeholders with the right column names and types, then replaced by their real
 * definitions (`CREATE OR REPLACE VIEW` keeps columns, so each can then read the others).
 * Grants, comments, owners, indexes, triggers and rules follow once all views exist.
 * Returns the number of views created.
 */
export async function recreateViews(client: pg.ClientBase, views: readonly DependentView[]): Promise<number> {
  for (const group of creationOrder(views)) {
    const [only] = group;
    if (group.length === 1 && only !== undefined) {
      await client.query(createViewSql(only, false));
      continue;
    }
    for (const view of group) await client.query(placeholderSql(view));
    for (const view of group) await client.query(createViewSql(view, true));
  }
  for (const view of views) await restoreViewAttributes(client, view);
  return views.length;
}

/**
 * The strongly connected components of the "reads" graph, in creation order: Tarjan's
 * algorithm emits a component only after every component it reaches, i.e. every view it reads.
 * A component of several views is a cycle (a view never reads itself: the query excludes that).
 */
export function creationOrder(views: readonly DependentView[]): DependentView[][] {
  interface Node {
    readonly view: DependentView;
    index: number;
    low: number;
    onStack: boolean;
  }
  const nodes = new Map(
    views.map((view) => [view.oid, { view, index: -1, low: -1, onStack: false } as Node]),
  );
  const stack: Node[] = [];
  const groups: DependentView[][] = [];
  let next = 0;
  const visit = (node: Node): void => {
    node.index = node.low = next++;
    stack.push(node);
    node.onStack = true;
    for (const read of node.view.reads) {
      const target = nodes.get(read);
      if (target === undefined) continue;
      if (target.index === -1) {
        visit(target);
        node.low = Math.min(node.low, target.low);
      } else if (target.onStack) node.low = Math.min(node.low, target.index);
    }
    if (node.low !== node.index) return;
    const group: DependentView[] = [];
    for (let member = stack.pop(); member !== undefined; member = member === node ? undefined : stack.pop()) {
      member.onStack = false;
      group.push(member.view);
    }
    groups.push(group);
  };
  for (const node of nodes.values()) if (node.index === -1) visit(node);
  return groups;
}

function createViewSql(view: DependentView, orReplace: boolean): string {
  const options = view.options.map(({ name, value }) => `${optionName(name)} = ${value}`);
  const withOptions = options.length > 0 ? ` WITH (${options.join(', ')})` : '';
  // pg_get_viewdef ends with ';', which would cut `... WITH DATA` off the statement.
  const definition = view.definition.trim().replace(/;$/, '');
  const data = view.materialized ? (view.populated ? ' WITH DATA' : ' WITH NO DATA') : '';
  const replace = orReplace ? 'OR REPLACE ' : '';
  return `CREATE ${replace}${kind(view)} ${qualifiedName(view.schema, view.name)}${withOptions} AS ${definition}${data}`;
}

/** `SELECT NULL::type AS column, ...`: a view with the real one's columns that reads nothing. */
function placeholderSql(view: DependentView): string {
  const columns = view.columns.map(
    (column) =>
      `NULL::${column.type}${column.collation === null ? '' : ` COLLATE ${column.collation}`} AS ${quoteIdent(column.name)}`,
  );
  return `CREATE VIEW ${qualifiedName(view.schema, view.name)} AS SELECT ${columns.join(', ')}`;
}

async function restoreViewAttributes(client: pg.ClientBase, view: DependentView): Promise<void> {
  const name = qualifiedName(view.schema, view.name);
  // While we still own the view: its indexes, triggers and rules need no right of the old owner.
  for (const statement of view.attached) await client.query(statement);
  if (view.commentLiteral !== null) {
    await client.query(`COMMENT ON ${kind(view)} ${name} IS ${view.commentLiteral}`);
  }
  for (const column of view.columns) {
    if (column.commentLiteral === null) continue;
    await client.query(`COMMENT ON COLUMN ${name}.${quoteIdent(column.name)} IS ${column.commentLiteral}`);
  }
  // Before the grants: granting as the owner records the owner as grantor, as before the swap.
  if (view.restoreOwner) await client.query(`ALTER ${kind(view)} ${name} OWNER TO ${quoteIdent(view.owner)}`);
  for (const grant of view.grants) await client.query(grantSql(name, grant));
}

const PRIVILEGES = new Set([
  'SELECT',
  'INSERT',
  'UPDATE',
  'DELETE',
  'TRUNCATE',
  'REFERENCES',
  'TRIGGER',
  'MAINTAIN',
]);

/** `GRANT <privilege> ON <relation> TO <role>`: the privilege from an allow-list, the role quoted. */
export function grantSql(relation: string, grant: Grant): string {
  if (!PRIVILEGES.has(grant.privilege)) {
    throw new InvariantError(
      `Expected a table privilege (${[...PRIVILEGES].join(', ')}), got \`${grant.privilege}\``,
    );
  }
  const grantee = grant.grantee === null ? 'PUBLIC' : quoteIdent(grant.grantee);
  return `GRANT ${grant.privilege} ON ${relation} TO ${grantee}${grant.grantable ? ' WITH GRANT OPTION' : ''}`;
}

/** Storage and view option names are keywords such as `fillfactor` or `toast.autovacuum_enabled`. */
function optionName(name: string): string {
  if (!/^[a-z_][a-z0-9_]*(\.[a-z_][a-z0-9_]*)?$/.test(name)) {
    throw new InvariantError(`Expected a relation option name such as \`security_barrier\`, got \`${name}\``);
  }
  return name;
}

function kind(view: DependentView): string {
  return view.materialized ? 'MATERIALIZED VIEW' : 'VIEW';
}
