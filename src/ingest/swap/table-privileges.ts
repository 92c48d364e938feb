/**
 * Privileges and owner of a table, carried onto its replacement: table-level privileges of
 * every kind, to every role and PUBLIC, with grant options and grantors, and column-level ones
 * for the columns the replacement still has. What the replacement got at creation (default
 * privileges) is revoked first, so it ends with exactly the live table's ACL.
 */

import type pg from 'pg';
import { InvariantError } from '../../errors.ts';
import { qualifiedName, quoteIdent, tableCatalogRow } from '../sql.ts';
import { type Grant, grantSql } from './dependent-views.ts';

/** One ACL entry: `grantee` may `privilege` (on `column`, if set), granted by `grantor`. */
export interface AclEntry extends Grant {
  readonly grantor: string;
  readonly column: string | null;
}

export interface TablePrivileges {
  readonly owner: string;
  /** The owner differs from us and we may act as it, so `ALTER TABLE ... OWNER TO` will succeed. */
  readonly restoreOwner: boolean;
  readonly entries: readonly AclEntry[];
}

/**
 * -- table-privileges: owner and every ACL entry, table and column level.
 * Input: $1 table oid. Output: one row; `entries` a JSON array of AclEntry (grantee null = PUBLIC).
 * A NULL relacl means the owner's default privileges: acldefault makes them explicit.
 */
const TABLE_PRIVILEGES_SQL = `
  WITH me AS (SELECT oid, rolsuper FROM pg_roles WHERE rolname = current_user)
  SELECT pg_get_userbyid(c.relowner) AS owner,
    c.relowner <> me.oid AND pg_has_role(c.relowner, 'USAGE')
      AND (me.rolsuper OR has_schema_privilege(c.relowner, c.relnamespace, 'CREATE')) AS "restoreOwner",
    (SELECT coalesce(json_agg(e ORDER BY e.column NULLS FIRST, e.grantor, e.grantee, e.privilege), '[]'::json) FROM (
       SELECT NULL::text AS column, pg_get_userbyid(a.grantor) AS grantor,
              CASE WHEN a.grantee = 0 THEN NULL ELSE pg_get_userbyid(a.grantee) END AS grantee,
              a.privilege_type AS privilege, a.is_grantable AS grantable
         FROM aclexplode(coalesce(c.relacl, acldefault('r', c.relowner))) AS a
       UNION ALL
       SELECT att.attname::text, pg_get_userbyid(a.grantor),
              CASE WHEN a.grantee = 0 THEN NULL ELSE pg_get_userbyid(a.grantee) END,
              a.privilege_type, a.is_grantable
         FROM pg_attribute AS att, aclexplode(att.attacl) AS a
        WHERE att.attrelid = c.oid AND att.attnum > 0 AND NOT att.attisdropped AND att.attacl IS NOT NULL
     ) AS e) AS entries
  FROM pg_class AS c CROSS JOIN me WHERE c.oid = $1::oid`;

export function captureTablePrivileges(client: pg.ClientBase, tableOid: number): Promise<TablePrivileges> {
  return tableCatalogRow<TablePrivileges>(client, TABLE_PRIVILEGES_SQL, tableOid);
}

/**
 * Gives `schema.name` the captured owner and ACL. Called once it has taken the live table's
 * name, with the rest of the swap, in the caller's transaction.
 *
 * The owner comes first: a GRANT by a superuser or the owner's member is then recorded as by
 * the owner, as on the live table. An entry granted by another role (one that held the grant
 * option) is granted as that role (`SET ROLE`), once its grantor holds the option again; if we
 * cannot act as that role, it is granted as ourselves, which keeps the privilege.
 */
export async function restoreTablePrivileges(
  client: pg.ClientBase,
  schema: string,
  name: string,
  privileges: TablePrivileges,
): Promise<void> {
  const relation = qualifiedName(schema, name);
  if (privileges.restoreOwner)
    await client.query(`ALTER TABLE ${relation} OWNER TO ${quoteIdent(privileges.owner)}`);
  const { rows } = await client.query<{ grantee: string | null }>(
    `SELECT DISTINCT CASE WHEN a.grantee = 0 THEN NULL ELSE pg_get_userbyid(a.grantee) END AS grantee
       FROM pg_class c, aclexplode(coalesce(c.relacl, acldefault('r', c.relowner))) a WHERE c.oid = $1::regclass`,
    [relation],
  );
  for (const { grantee } of rows)
    await client.query(
      `REVOKE ALL ON ${relation} FROM ${grantee === null ? 'PUBLIC' : quoteIdent(grantee)} CASCADE`,
    );
  const kept = await columnNames(client, relation);
  let pending = privileges.entries.filter((e) => e.column === null || kept.has(e.column));
  while (pending.length > 0) {
    const ready: AclEntry[] = [];
    for (const entry of pending)
      if (await grantorMayGrant(client, relation, privileges.owner, entry)) ready.push(entry);
    // A grantor that never gets its option back (we cannot act as it): grant the rest as ourselves.
    const batch = ready.length > 0 ? ready : pending;
    for (const entry of batch)
      await grant(client, relation, entry, ready.length > 0 && entry.grantor !== privileges.owner);
    pending = pending.filter((e) => !batch.includes(e));
  }
}

async function grantorMayGrant(client: pg.ClientBase, relation: string, owner: string, entry: AclEntry) {
  if (entry.grantor === owner) return true;
  const option = `${entry.privilege} WITH GRANT OPTION`;
  const { rows } = await client.query<{ ok: boolean }>(
    `SELECT pg_has_role(current_user, $1, 'MEMBER') AND
       CASE WHEN $3::text IS NULL THEN has_table_privilege($1, $2::regclass, $4)
            ELSE has_column_privilege($1, $2::regclass, $3, $4) END AS ok`,
    [entry.grantor, relation, entry.column, option],
  );
  return rows[0]?.ok === true;
}

async function grant(client: pg.ClientBase, relation: string, entry: AclEntry, asGrantor: boolean) {
  const sql = entry.column === null ? grantSql(relation, entry) : columnGrantSql(relation, entry);
  if (!asGrantor) {
    await client.query(sql);
    return;
  }
  const { rows } = await client.query<{ role: string }>(`SELECT current_setting('role') AS role`);
  await client.query(`SET ROLE ${quoteIdent(entry.grantor)}`);
  try {
    await client.query(sql);
  } finally {
    const role = rows[0]?.role ?? 'none';
    await client.query(role === 'none' ? 'RESET ROLE' : `SET ROLE ${quoteIdent(role)}`);
  }
}

const COLUMN_PRIVILEGES = new Set(['SELECT', 'INSERT', 'UPDATE', 'REFERENCES']);

function columnGrantSql(relation: string, entry: AclEntry): string {
  if (!COLUMN_PRIVILEGES.has(entry.privilege)) {
    throw new InvariantError(
      `Expected a column privilege (${[...COLUMN_PRIVILEGES].join(', ')}), got \`${entry.privilege}\``,
    );
  }
  const grantee = entry.grantee === null ? 'PUBLIC' : quoteIdent(entry.grantee);
  return `GRANT ${entry.privilege} (${quoteIdent(entry.column as string)}) ON ${relation} TO ${grantee}${entry.grantable ? ' WITH GRANT OPTION' : ''}`;
}

/** The columns `relation` has now. */
export async function columnNames(client: pg.ClientBase, relation: string): Promise<Set<string>> {
  const { rows } = await client.query<{ name: string }>(
    'SELECT attname::text AS name FROM pg_attribute WHERE attrelid = $1::regclass AND attnum > 0 AND NOT attisdropped',
    [relation],
  );
  return new Set(rows.map((r) => r.name));
}
