/**
 * A table rebuilt by a migration keeps everything attached to it: a snapshot of its catalog
 * entries (owner, privileges of every kind, comments, RLS flags and policies, triggers,
 * storage parameters, statistics targets, replica identity, publications) is the same before
 * and after the swap, but for its oid and relfilenode.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type pg from 'pg';
import { defineTable, ingest, type TableDefinitionInput } from '../../src/index.ts';
import { batchesOf, rowsOf, selectAll, withSchema } from '../helpers/ingest.ts';
import { uniqueName } from '../helpers/pg.ts';

/**
 * -- catalog snapshot of one table, names only (no oids), every list sorted.
 * $1: the table's qualified name.
 */
const SNAPSHOT_SQL = `
  SELECT pg_get_userbyid(c.relowner) AS owner,
    ARRAY(SELECT format('%s|%s|%s|%s', pg_get_userbyid(a.grantor), coalesce(pg_get_userbyid(nullif(a.grantee, 0)), 'PUBLIC'),
                        a.privilege_type, a.is_grantable)
            FROM aclexplode(coalesce(c.relacl, acldefault('r', c.relowner))) AS a ORDER BY 1) AS acl,
    ARRAY(SELECT format('%s|%s|%s|%s|%s', att.attname, pg_get_userbyid(a.grantor), coalesce(pg_get_userbyid(nullif(a.grantee, 0)), 'PUBLIC'),
                        a.privilege_type, a.is_grantable)
            FROM pg_attribute AS att, aclexplode(att.attacl) AS a
           WHERE att.attrelid = c.oid AND att.attnum > 0 AND NOT att.attisdropped ORDER BY 1) AS "columnAcl",
    obj_description(c.oid, 'pg_class') AS comment,
    -- This server stamps every new column with its own pg_attver option: not the user's, left out.
    ARRAY(SELECT format('%s|%s|%s|%s', attname, col_description(c.oid, attnum), attstattarget,
                        ARRAY(SELECT o FROM unnest(attoptions) AS o WHERE o NOT LIKE 'pg\\_attver=%'))
            FROM pg_attribute WHERE attrelid = c.oid AND attnum > 0 AND NOT attisdropped ORDER BY attnum) AS columns,
    c.relrowsecurity AS "rowSecurity", c.relforcerowsecurity AS "forceRowSecurity",
    ARRAY(SELECT format('%s|%s|%s|%s|%s|%s', policyname, permissive, roles, cmd, qual, with_check)
            FROM pg_policies WHERE schemaname = n.nspname AND tablename = c.relname ORDER BY 1) AS policies,
    ARRAY(SELECT format('%s|%s', pg_get_triggerdef(oid), tgenabled) FROM pg_trigger
           WHERE tgrelid = c.oid AND NOT tgisinternal ORDER BY 1) AS triggers,
    c.reloptions AS options,
    (SELECT reloptions FROM pg_class WHERE oid = c.reltoastrelid) AS "toastOptions",
    c.relreplident AS "replicaIdentity",
    (SELECT ic.relname FROM pg_index i JOIN pg_class ic ON ic.oid = i.indexrelid
      WHERE i.indrelid = c.oid AND i.indisreplident) AS "identityIndex",
    ARRAY(SELECT format('%s|%s|%s', pubname, attnames, rowfilter) FROM pg_publication_tables
           WHERE schemaname = n.nspname AND tablename = c.relname ORDER BY 1) AS publications,
    c.relpersistence AS persistence
  FROM pg_class AS c JOIN pg_namespace AS n ON n.oid = c.relnamespace WHERE c.oid = $1::regclass`;

async function snapshot(client: pg.ClientBase, relation: string) {
  const { rows } = await client.query(SNAPSHOT_SQL, [relation]);
  const row = rows[0];
  // The high watermark key is rewritten by each batch; every other key of the comment is kept.
  const comment = JSON.parse(row.comment);
  delete comment['pg-bulk-ingest'];
  return { ...row, comment };
}

async function identity(client: pg.ClientBase, relation: string) {
  const { rows } = await client.query(
    'SELECT oid::int AS oid, relfilenode::int AS relfilenode FROM pg_class WHERE oid = $1::regclass',
    [relation],
  );
  return rows[0];
}

const definition = (schema: string, nType: string): TableDefinitionInput => ({
  schema,
  name: 't',
  columns: [
    { name: 'id', type: 'integer', primaryKey: true },
    { name: 'a', type: 'text', nullable: false, unique: true },
    { name: 'n', type: nType },
    { name: 'doc', type: 'text' },
  ],
});

describe('ingest(): a rebuilt table keeps every property', () => {
  it('catalog snapshot before and after integer → bigint (a rebuild) is identical but for oid and relfilenode', () =>
    withSchema('props', async (f) => {
      const [owner, reader, granter, grantee] = ['owner', 'reader', 'granter', 'grantee'].map((r) =>
        uniqueName(r),
      );
      const publication = uniqueName('pub');
      const v1 = defineTable(definition(f.schema, 'integer'));
      await ingest(f.client, [v1], batchesOf(['1', null, rowsOf(v1, [1, 'x', 5, 'd'])]));
      const t = `"${f.schema}".t`;
      try {
        await f.observer.query(`
          CREATE ROLE "${owner}"; CREATE ROLE "${reader}"; CREATE ROLE "${granter}"; CREATE ROLE "${grantee}";
          GRANT USAGE, CREATE ON SCHEMA "${f.schema}" TO "${owner}", "${granter}";
          ALTER TABLE ${t} OWNER TO "${owner}";
          REVOKE TRUNCATE ON ${t} FROM "${owner}";
          GRANT SELECT, INSERT ON ${t} TO "${reader}";
          GRANT DELETE ON ${t} TO PUBLIC;
          GRANT SELECT, UPDATE ON ${t} TO "${granter}" WITH GRANT OPTION;
          SET ROLE "${granter}"; GRANT SELECT ON ${t} TO "${grantee}"; RESET ROLE;
          GRANT UPDATE (a), REFERENCES (n) ON ${t} TO "${reader}";
          GRANT SELECT (doc) ON ${t} TO "${grantee}" WITH GRANT OPTION;
          COMMENT ON TABLE ${t} IS '{"owner": "team x", "pg-bulk-ingest": {"high-watermark": "1"}}';
          COMMENT ON COLUMN ${t}.a IS 'the a ''quoted''';
          COMMENT ON COLUMN ${t}.n IS 'n';
          ALTER TABLE ${t} ENABLE ROW LEVEL SECURITY, FORCE ROW LEVEL SECURITY;
          CREATE POLICY "see positive" ON ${t} FOR SELECT TO "${reader}", PUBLIC USING (n > 0);
          CREATE POLICY no_x ON ${t} AS RESTRICTIVE FOR INSERT WITH CHECK (a <> 'x');
          CREATE FUNCTION "${f.schema}".touch() RETURNS trigger LANGUAGE plpgsql AS $$BEGIN RETURN NEW; END$$;
          CREATE TRIGGER before_insert BEFORE INSERT ON ${t} FOR EACH ROW EXECUTE FUNCTION "${f.schema}".touch();
          CREATE TRIGGER after_update AFTER UPDATE OF a ON ${t} FOR EACH ROW WHEN (OLD.a IS DISTINCT FROM NEW.a)
            EXECUTE FUNCTION "${f.schema}".touch();
          ALTER TABLE ${t} DISABLE TRIGGER after_update;
          ALTER TABLE ${t} SET (fillfactor = 70, autovacuum_enabled = false, toast.autovacuum_enabled = false);
          ALTER TABLE ${t} ALTER COLUMN a SET STATISTICS 500, ALTER COLUMN n SET (n_distinct = 100);
          ALTER TABLE ${t} REPLICA IDENTITY USING INDEX t_a_idx;
          CREATE PUBLICATION "${publication}" FOR TABLE ${t} (id, a, n) WHERE (n > 0);
        `);
        const before = await snapshot(f.observer, t);
        const was = await identity(f.observer, t);
        const v2 = defineTable(definition(f.schema, 'bigint'));
        await ingest(f.client, [v2], batchesOf(['2', null, rowsOf(v2, [2, 'y', 6, null])]));
        const after = await snapshot(f.observer, t);
        const now = await identity(f.observer, t);
        assert.notEqual(now.oid, was.oid, 'rebuilt');
        assert.notEqual(now.relfilenode, was.relfilenode);
        assert.deepEqual(after, before);
        assert.equal(before.publications.length, 1, 'the snapshot sees the publication');
        assert.equal(before.triggers.length, 2);
        assert.deepEqual(
          (await selectAll(f.observer, f.schema, 't')).map((r) => r.n),
          ['5', '6'],
        );
      } finally {
        await f.observer.query(`DROP PUBLICATION IF EXISTS "${publication}"`);
        await f.observer.query(`DROP SCHEMA IF EXISTS "${f.schema}" CASCADE`);
        for (const role of [owner, reader, granter, grantee])
          await f.observer
            .query(`DROP OWNED BY "${role}"; DROP ROLE IF EXISTS "${role}"`)
            .catch(() => undefined);
      }
    }));
});
