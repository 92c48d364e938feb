/**
 * replaceTable(): the swap of a replacement table in for the live one, against a real PostgreSQL.
 * Every name is made of quotes, capitals and emoji, so every test also checks the quoting.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import pg from 'pg';
import {
  type BlockingBackends,
  type BlockingDelays,
  blockingDelaysSchema,
} from '../../src/ingest/options-schema.ts';
import { quoteIdent as q, qualifiedName } from '../../src/ingest/sql.ts';
import { type ReplaceTableResult, replaceTable } from '../../src/ingest/swap/replace-table.ts';
import { connect, DATABASE_URL, dropSchema, uniqueName, withClient } from '../helpers/pg.ts';

const TABLE = 'Live "Tä" 🦄';
const REPLACEMENT = '_pgbi_replace "Nëw" 🐣';
const ID = 'Id "K" 🔑';
const NAME = "Näme 'q' 😀";
/** A swap left waiting for a blocker fails the test rather than hang it. */
const BLOCKED = { timeout: 10_000 };
/** Short delays, so that a blocked swap resolves within the test. */
/** ingest()'s default delays. */
const DEFAULT_DELAYS = blockingDelaysSchema.parse({});
const FAST: BlockingDelays = { cancelAfterMs: 300, terminateAfterMs: 10_000, intervalMs: 100 };

interface Fixture {
  readonly schema: string;
  /** Schema-qualified, quoted name of a relation in the test schema. */
  readonly rel: (name: string) => string;
  readonly live: string;
  /** Creates a role with a unique name (`LOGIN` to connect as it), dropped after the test. */
  readonly role: (label: string, attributes?: 'LOGIN') => Promise<string>;
}

/** A schema holding the live table (row 1, 'old'), dropped after `fn` with the roles it created. */
async function withFixture(fn: (f: Fixture, admin: pg.Client) => Promise<void>): Promise<void> {
  const schema = uniqueName('Swap "Sch" 🐘');
  const rel = (name: string) => qualifiedName(schema, name);
  const roles: string[] = [];
  const admin = await connect();
  try {
    await admin.query(`CREATE SCHEMA ${q(schema)};
      CREATE TABLE ${rel(TABLE)} (${q(ID)} integer PRIMARY KEY, ${q(NAME)} varchar(16) COLLATE "C", amount numeric(12,2));
      INSERT INTO ${rel(TABLE)} VALUES (1, 'old', 1.5)`);
    const role = async (label: string, attributes = '') => {
      const name = uniqueName(label);
      await admin.query(`CREATE ROLE ${q(name)} ${attributes}`);
      roles.push(name);
      return name;
    };
    await fn({ schema, rel, live: rel(TABLE), role }, admin);
  } finally {
    await dropSchema(schema);
    for (const role of roles) await admin.query(`DROP OWNED BY ${q(role)}; DROP ROLE ${q(role)}`);
    await admin.end();
  }
}

/** In `client`'s open transaction: builds the replacement (rows 2 'new' and 3 'newer'). */
async function buildReplacement(client: pg.ClientBase, f: Fixture): Promise<void> {
  await client.query(`
    CREATE TABLE ${f.rel(REPLACEMENT)} (${q(ID)} integer PRIMARY KEY, ${q(NAME)} varchar(16) COLLATE "C", amount numeric(12,2));
    INSERT INTO ${f.rel(REPLACEMENT)} VALUES (2, 'new', 2.5), (3, 'newer', 3.5)`);
}

/** One batch transaction: build the replacement, swap it in, commit. */
async function swapAndCommit(
  f: Fixture,
  options: BlockingBackends = DEFAULT_DELAYS,
): Promise<ReplaceTableResult> {
  return withClient(async (client) => {
    await client.query('BEGIN');
    await buildReplacement(client, f);
    const result = await replaceTable(
      client,
      { schema: f.schema, name: TABLE, replacementName: REPLACEMENT },
      options,
    );
    await client.query('COMMIT');
    return result;
  });
}

async function ids(client: pg.ClientBase, relation: string): Promise<number[]> {
  const { rows } = await client.query(`SELECT ${q(ID)} AS id FROM ${relation} ORDER BY 1`);
  return rows.map((row) => row.id);
}

/** Everything a swap must keep about the schema's views: definition, owner, ACL, comments, indexes... */
async function viewsSnapshot(client: pg.ClientBase, schema: string): Promise<unknown[]> {
  const { rows } = await client.query(
    `SELECT c.relname, c.relkind, pg_get_viewdef(c.oid) AS definition, pg_get_userbyid(c.relowner) AS owner,
       c.reloptions, c.relispopulated, obj_description(c.oid, 'pg_class') AS comment,
       ARRAY(SELECT x::text FROM unnest(c.relacl) AS x ORDER BY 1) AS acl,
       ARRAY(SELECT format('%s %s %s', a.attname, format_type(a.atttypid, a.atttypmod), col_description(c.oid, a.attnum))
             FROM pg_attribute AS a WHERE a.attrelid = c.oid AND a.attnum > 0 ORDER BY a.attnum) AS columns,
       ARRAY(SELECT pg_get_indexdef(i.indexrelid) FROM pg_index AS i WHERE i.indrelid = c.oid ORDER BY 1) AS indexes,
       ARRAY(SELECT pg_get_triggerdef(t.oid) FROM pg_trigger AS t WHERE t.tgrelid = c.oid ORDER BY 1) AS triggers,
       ARRAY(SELECT pg_get_ruledef(r.oid) FROM pg_rewrite AS r WHERE r.ev_class = c.oid ORDER BY 1) AS rules
     FROM pg_class AS c JOIN pg_namespace AS n ON n.oid = c.relnamespace
     WHERE n.nspname = $1 AND c.relkind IN ('v', 'm') ORDER BY c.relname`,
    [schema],
  );
  assert.ok(rows.length > 0);
  return rows;
}

/** `grantee privilege grantable` lines of a relation, sorted; PUBLIC as `PUBLIC`, its owner's own left out. */
async function grantsOf(client: pg.ClientBase, relation: string): Promise<string[]> {
  const { rows } = await client.query(
    `SELECT coalesce(pg_get_userbyid(nullif(a.grantee, 0)), 'PUBLIC') AS grantee, a.privilege_type, a.is_grantable::text
     FROM pg_class AS c, aclexplode(c.relacl) AS a WHERE c.oid = $1::regclass AND a.grantee <> c.relowner`,
    [relation],
  );
  return rows.map((row) => `${row.grantee} ${row.privilege_type} ${row.is_grantable}`).sort();
}

/** Starts a query on `client`; `settled()` says whether it has finished yet. */
function track<T>(promise: Promise<T>): { promise: Promise<T>; settled: () => boolean } {
  let done = false;
  const tracked = promise.finally(() => {
    done = true;
  });
  tracked.catch(() => {}); // observed by the test later; avoid an unhandled rejection meanwhile
  return { promise: tracked, settled: () => done };
}

describe('replaceTable', () => {
  it('copies every grant (with grant option, to roles and PUBLIC) onto the replacement', () =>
    withFixture(async (f, admin) => {
      const reader = await f.role('Reader "R" 📖');
      const granter = await f.role("Granter 'G' 🎁");
      await admin.query(`GRANT SELECT ON ${f.live} TO ${q(reader)}, PUBLIC;
        GRANT SELECT ON ${f.live} TO ${q(granter)} WITH GRANT OPTION;
        GRANT INSERT, UPDATE ON ${f.live} TO ${q(reader)}`);

      const result = await swapAndCommit(f);

      assert.deepEqual(result, {
        cancelledBackends: 0,
        terminatedBackends: 0,
        recreatedViews: 0,
        recreatedForeignKeys: 0,
      });
      assert.deepEqual(await ids(admin, f.live), [2, 3]);
      const expected = [
        `${granter} SELECT true`,
        'PUBLIC SELECT false',
        `${reader} SELECT false`,
        `${reader} INSERT false`,
        `${reader} UPDATE false`,
      ];
      assert.deepEqual(await grantsOf(admin, f.live), expected.sort());
    }));

  it('recreates a view, a view of a view and a materialized view (index, data from the new table) with their grants, comments and owner', () =>
    withFixture(async (f, admin) => {
      const [owner, reader, granter] = [
        await f.role('Owner "O" 🦉'),
        await f.role('Reader 📖'),
        await f.role('GRANTER 🎁'),
      ];
      const [v1, v2, mv] = ['View "V1" ✨', 'view "v2" ✨', 'Mat "M" 🧊'];
      await admin.query(`GRANT SELECT ON ${f.live} TO ${q(owner)};
        CREATE VIEW ${f.rel(v1)} AS SELECT ${q(ID)}, ${q(NAME)} FROM ${f.live};
        ALTER VIEW ${f.rel(v1)} OWNER TO ${q(owner)};
        GRANT SELECT ON ${f.rel(v1)} TO ${q(reader)};
        COMMENT ON VIEW ${f.rel(v1)} IS 'first ✨';
        COMMENT ON COLUMN ${f.rel(v1)}.${q(NAME)} IS 'a column';
        CREATE VIEW ${f.rel(v2)} AS SELECT * FROM ${f.rel(v1)};
        GRANT SELECT ON ${f.rel(v2)} TO ${q(granter)} WITH GRANT OPTION;
        GRANT INSERT ON ${f.rel(v2)} TO ${q(reader)};
        CREATE MATERIALIZED VIEW ${f.rel(mv)} AS SELECT * FROM ${f.rel(v2)};
        CREATE UNIQUE INDEX ${q('Idx "I" 🔍')} ON ${f.rel(mv)} (${q(ID)});
        GRANT SELECT ON ${f.rel(mv)} TO ${q(reader)};
        COMMENT ON MATERIALIZED VIEW ${f.rel(mv)} IS 'materialized';
        CREATE TABLE ${f.rel('unrelated')} (x integer);
        CREATE VIEW ${f.rel('unrelated view')} AS SELECT x FROM ${f.rel('unrelated')}`);
      const before = await viewsSnapshot(admin, f.schema);

      const result = await swapAndCommit(f);

      assert.equal(result.recreatedViews, 3);
      assert.deepEqual(await viewsSnapshot(admin, f.schema), before);
      assert.deepEqual(await ids(admin, f.rel(v2)), [2, 3]);
      assert.deepEqual(
        await ids(admin, f.rel(mv)),
        [2, 3],
        'the materialized view is filled from the new table',
      );
    }));

  it('recreates a cycle of views (placeholders first, column types and collations kept) and the views reading it', () =>
    withFixture(async (f, admin) => {
      const reader = await f.role('Cycle "Reader" 🔁');
      const [a, b, c] = ['Cycle "A" 🅰', 'Cycle "B" 🅱', 'After "C" ©'];
      const columns = `${q(ID)}, ${q(NAME)}, amount`;
      // PostgreSQL accepts a cycle through CREATE OR REPLACE VIEW (reading it then fails with infinite recursion).
      await admin.query(`CREATE VIEW ${f.rel(a)} AS SELECT ${columns} FROM ${f.live};
        CREATE VIEW ${f.rel(b)} AS SELECT ${columns} FROM ${f.rel(a)};
        CREATE OR REPLACE VIEW ${f.rel(a)} AS SELECT ${columns} FROM ${f.live} UNION ALL SELECT ${columns} FROM ${f.rel(b)};
        CREATE VIEW ${f.rel(c)} AS SELECT ${q(NAME)} FROM ${f.rel(b)};
        GRANT SELECT ON ${f.rel(a)} TO ${q(reader)};
        GRANT SELECT ON ${f.rel(b)} TO ${q(reader)} WITH GRANT OPTION;
        GRANT SELECT, TRIGGER ON ${f.rel(c)} TO ${q(reader)}`);
      const before = await viewsSnapshot(admin, f.schema);

      const result = await swapAndCommit(f);

      assert.equal(result.recreatedViews, 3);
      assert.deepEqual(await viewsSnapshot(admin, f.schema), before);
      const { rows } = await admin.query(
        `SELECT count(*)::int AS n FROM pg_depend AS d JOIN pg_rewrite AS r ON d.classid = 'pg_rewrite'::regclass AND d.objid = r.oid
         WHERE r.ev_class = $1::regclass AND d.refobjid = $2::regclass`,
        [f.rel(a), f.live],
      );
      assert.ok(rows[0].n > 0, 'the cycle reads the new table');
    }));

  it('keeps names and comments made of quotes, capitals, backslashes and emoji, view options, triggers and rules', () =>
    withFixture(async (f, admin) => {
      const role = await f.role('"\'Röle\' 👻"');
      const [quoted, weird, fn] = ['"', 'It\'s "ÜBER" \\ 🎉', 'Trig "F" 🛠'];
      const comment = "It's \"quoted\" \\ back\\slash 😀 'x'";
      await admin.query(`
        CREATE VIEW ${f.rel(quoted)} WITH (security_barrier = true, check_option = local) AS
          SELECT ${q(ID)} AS ${q(weird)}, ${q(NAME)} FROM ${f.live} WHERE ${q(ID)} > 0;
        COMMENT ON VIEW ${f.rel(quoted)} IS ${admin.escapeLiteral(comment)};
        COMMENT ON COLUMN ${f.rel(quoted)}.${q(weird)} IS ${admin.escapeLiteral(comment)};
        GRANT SELECT, UPDATE ON ${f.rel(quoted)} TO ${q(role)} WITH GRANT OPTION;
        CREATE VIEW ${f.rel(weird)} AS SELECT DISTINCT ${q(ID)} FROM ${f.live};
        CREATE FUNCTION ${f.rel(fn)}() RETURNS trigger LANGUAGE plpgsql AS $$
          BEGIN INSERT INTO ${f.live} (${q(ID)}) VALUES (NEW.${q(ID)}); RETURN NEW; END $$;
        CREATE TRIGGER ${q('On "Insert" ➕')} INSTEAD OF INSERT ON ${f.rel(weird)} FOR EACH ROW EXECUTE FUNCTION ${f.rel(fn)}();
        CREATE RULE ${q('Rule "D" ➖')} AS ON DELETE TO ${f.rel(weird)} DO INSTEAD DELETE FROM ${f.live} WHERE ${q(ID)} = OLD.${q(ID)}`);
      const before = await viewsSnapshot(admin, f.schema);

      assert.equal((await swapAndCommit(f)).recreatedViews, 2);

      assert.deepEqual(await viewsSnapshot(admin, f.schema), before);
      await admin.query(
        `INSERT INTO ${f.rel(weird)} VALUES (9); DELETE FROM ${f.rel(weird)} WHERE ${q(ID)} = 2`,
      );
      assert.deepEqual(await ids(admin, f.live), [3, 9], 'the trigger and the rule act on the new table');
    }));

  it('cancels the query of a backend that blocks the swap, once cancelAfterMs has passed', BLOCKED, () =>
    withFixture(async (f) => {
      const blocker = await connect();
      blocker.on('error', () => {});
      await blocker.query(`BEGIN; SELECT count(*) FROM ${f.live}`);
      const blocked = track(blocker.query('SELECT pg_sleep(30)'));
      const started = performance.now();

      const result = await swapAndCommit(f, FAST);

      assert.ok(performance.now() - started >= 300, 'the swap waited for the delay');
      assert.deepEqual(result, {
        cancelledBackends: 1,
        terminatedBackends: 0,
        recreatedViews: 0,
        recreatedForeignKeys: 0,
      });
      await assert.rejects(blocked.promise, { code: '57014' }); // query_canceled
      await blocker.end();
    }),
  );

  it(
    'terminates a backend idle in a transaction, which cancelling does not free, once terminateAfterMs has passed',
    BLOCKED,
    () =>
      withFixture(async (f) => {
        const blocker = await connect();
        blocker.on('error', () => {}); // the terminated connection reports its end here
        await blocker.query(`BEGIN; SELECT count(*) FROM ${f.live}`);
        const started = performance.now();

        const result = await swapAndCommit(f, { cancelAfterMs: 200, terminateAfterMs: 500, intervalMs: 100 });

        assert.ok(performance.now() - started >= 500, 'the swap waited for the terminate delay');
        assert.deepEqual(result, {
          cancelledBackends: 1,
          terminatedBackends: 1,
          recreatedViews: 0,
          recreatedForeignKeys: 0,
        });
        await assert.rejects(blocker.query('SELECT 1'));
        await blocker.end();
      }),
  );

  it(
    "fails at once, with the reason, when it may not cancel the blocking backend (a superuser's)",
    BLOCKED,
    () =>
      withFixture(async (f, admin) => {
        const role = await f.role('Ingester "I" 🚚', 'LOGIN');
        await admin.query(
          `ALTER TABLE ${f.live} OWNER TO ${q(role)}; GRANT USAGE, CREATE ON SCHEMA ${q(f.schema)} TO ${q(role)}`,
        );
        const blocker = await connect(); // a superuser: our role may not cancel its query
        await blocker.query(`BEGIN; SELECT count(*) FROM ${f.live}`);
        const blocked = track(blocker.query('SELECT pg_sleep(30)'));
        const url = new URL(DATABASE_URL);
        url.username = role;
        const swapper = new pg.Client({ connectionString: url.href });
        await swapper.connect();
        await swapper.query('BEGIN');
        await buildReplacement(swapper, f);
        const target = { schema: f.schema, name: TABLE, replacementName: REPLACEMENT };

        await assert.rejects(replaceTable(swapper, target, FAST), { code: '42501' }); // insufficient_privilege

        assert.equal(blocked.settled(), false, 'the blocker was left alone');
        await swapper.query('ROLLBACK');
        await admin.query('SELECT pg_cancel_backend($1)', [
          (blocker as unknown as { processID: number }).processID,
        ]);
        await assert.rejects(blocked.promise, { code: '57014' });
        await Promise.all([blocker.end(), swapper.end()]);
        assert.deepEqual(await ids(admin, f.live), [1]);
      }),
  );

  it(
    'with blockingBackends: false, waits for the blocking backend as long as it holds its lock',
    BLOCKED,
    () =>
      withFixture(async (f, admin) => {
        const blocker = await connect();
        await blocker.query(`BEGIN; SELECT count(*) FROM ${f.live}`);
        const swapper = await connect();
        await swapper.query('BEGIN');
        await buildReplacement(swapper, f);
        const target = { schema: f.schema, name: TABLE, replacementName: REPLACEMENT };
        const swap = track(replaceTable(swapper, target, false));

        await sleep(800); // well past FAST's delays: nothing may have been cancelled
        assert.equal(swap.settled(), false);
        const { rows } = await admin.query('SELECT wait_event_type FROM pg_stat_activity WHERE pid = $1', [
          (swapper as unknown as { processID: number }).processID,
        ]);
        assert.equal(rows[0].wait_event_type, 'Lock');
        await blocker.query('COMMIT'); // the blocker is still alive, and frees the table

        assert.deepEqual(await swap.promise, {
          cancelledBackends: 0,
          terminatedBackends: 0,
          recreatedViews: 0,
          recreatedForeignKeys: 0,
        });
        await swapper.query('COMMIT');
        assert.deepEqual(await ids(admin, f.live), [2, 3]);
        await Promise.all([blocker.end(), swapper.end()]);
      }),
  );

  it(
    'lets other sessions read the old table and its views until the caller commits, then the new ones',
    BLOCKED,
    () =>
      withFixture(async (f, admin) => {
        await admin.query(`CREATE VIEW ${f.rel('View 👀')} AS SELECT ${q(ID)} FROM ${f.live}`);
        const swapper = await connect();
        await swapper.query('BEGIN');
        await buildReplacement(swapper, f);
        assert.deepEqual(await ids(admin, f.live), [1], 'readable while the replacement is filled');
        await replaceTable(swapper, { schema: f.schema, name: TABLE, replacementName: REPLACEMENT }, FAST);

        // Neither a missing table nor an empty one: readers wait for the commit, then see the new rows.
        const table = track(ids(admin, f.live));
        const reader = await connect();
        const view = track(ids(reader, f.rel('View 👀')));
        await sleep(200);
        assert.equal(table.settled() || view.settled(), false);
        await swapper.query('COMMIT');

        assert.deepEqual(await table.promise, [2, 3]);
        assert.deepEqual(await view.promise, [2, 3]);
        await Promise.all([reader.end(), swapper.end()]);
      }),
  );

  it('adds again the foreign keys of other tables that reference it (names, actions kept), now pointing at the new table', () =>
    withFixture(async (f, admin) => {
      const child = f.rel('Child "C" 👶');
      const other = uniqueName('Other "Sch" 🐙');
      await admin.query(`CREATE TABLE ${child} (ref integer CONSTRAINT ${q('Fk "F" 🔗')} REFERENCES ${f.live} ON DELETE CASCADE);
        CREATE SCHEMA ${q(other)};
        CREATE TABLE ${qualifiedName(other, 'elsewhere')} (ref integer REFERENCES ${f.live} DEFERRABLE)`);
      try {
        const definitions = async () =>
          (
            await admin.query(
              `SELECT conrelid::regclass::text AS t, conname, pg_get_constraintdef(oid) AS def FROM pg_constraint
               WHERE contype = 'f' AND confrelid = $1::regclass ORDER BY 1, 2`,
              [f.live],
            )
          ).rows;
        const before = await definitions();
        assert.equal(before.length, 2);
        const result = await swapAndCommit(f);
        assert.equal(result.recreatedForeignKeys, 2);
        assert.deepEqual(await definitions(), before);
        await admin.query(`INSERT INTO ${child} VALUES (3)`); // a row of the new table
        await assert.rejects(admin.query(`INSERT INTO ${child} VALUES (1)`), { code: '23503' }); // the old one's
        await admin.query(`DELETE FROM ${f.live} WHERE ${q(ID)} = 3`);
        assert.equal(
          (await admin.query(`SELECT count(*)::int AS n FROM ${child}`)).rows[0].n,
          0,
          'ON DELETE CASCADE kept',
        );
      } finally {
        await dropSchema(other);
      }
    }));

  it('fails, changing nothing, when a referencing row would lose the row it references', () =>
    withFixture(async (f, admin) => {
      const child = f.rel('Child "C" 👶');
      await admin.query(`CREATE TABLE ${child} (ref integer CONSTRAINT ${q('Fk "F" 🔗')} REFERENCES ${f.live});
        INSERT INTO ${child} VALUES (1)`);
      await assert.rejects(swapAndCommit(f), {
        code: '23503',
        message: /violates foreign key constraint "Fk "F" 🔗"/,
      });
      assert.deepEqual(await ids(admin, f.live), [1]);
      const fk = await admin.query(
        `SELECT count(*)::int AS n FROM pg_constraint WHERE conrelid = $1::regclass`,
        [child],
      );
      assert.equal(fk.rows[0].n, 1);
    }));

  it('leaves the live table, its views and their grants as they were if the caller rolls back', () =>
    withFixture(async (f, admin) => {
      const reader = await f.role('Reader ⏪');
      await admin.query(`CREATE VIEW ${f.rel('View ⏪')} AS SELECT ${q(ID)} FROM ${f.live};
        GRANT SELECT ON ${f.live}, ${f.rel('View ⏪')} TO ${q(reader)}`);
      const before = await viewsSnapshot(admin, f.schema);
      await withClient(async (client) => {
        await client.query('BEGIN');
        await buildReplacement(client, f);
        await replaceTable(
          client,
          { schema: f.schema, name: TABLE, replacementName: REPLACEMENT },
          DEFAULT_DELAYS,
        );
        await client.query('ROLLBACK');
      });
      assert.deepEqual(await viewsSnapshot(admin, f.schema), before);
      assert.deepEqual(await ids(admin, f.live), [1]);
      assert.deepEqual(await grantsOf(admin, f.live), [`${reader} SELECT false`]);
    }));

  it('refuses to run outside a transaction, where a failure after the drop would lose the table', () =>
    withFixture(async (f, admin) => {
      await buildReplacement(admin, f);
      const target = { schema: f.schema, name: TABLE, replacementName: REPLACEMENT };
      await assert.rejects(replaceTable(admin, target, DEFAULT_DELAYS), /must run inside the transaction/);
      assert.deepEqual(await ids(admin, f.live), [1]);
    }));
});
