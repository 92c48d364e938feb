/**
 * G5 per-table locks: different streams proceed at the same time on different worker processes
 * (their transactions overlap), one stream never runs two batches at once, and streams that
 * share tables, listing them in opposite orders, never deadlock.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type pg from 'pg';
import { defineTable, type IngestTable, ingest, Producer } from '../../src/index.ts';
import { withQueueFixture } from '../helpers/queue-fixture.ts';
import { committedSeqs } from '../helpers/stream-state.ts';
import { waitUntil } from '../helpers/wait.ts';

function keyed(schema: string, name: string): IngestTable {
  return defineTable({
    schema,
    name,
    columns: [
      { name: 'id', type: 'integer', primaryKey: true },
      { name: 'v', type: 'text' },
    ],
  });
}

/** Each INSERT statement into `table` sleeps, and records when its transaction wrote. */
async function addSlowWindowTriggers(db: pg.ClientBase, schema: string, tables: string[], seconds: number) {
  const s = `"${schema}"`;
  await db.query(`
    CREATE TABLE ${s}.windows (tbl text NOT NULL, txid bigint NOT NULL, at timestamptz NOT NULL);
    CREATE FUNCTION ${s}.window_start() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
      INSERT INTO ${s}.windows VALUES (TG_TABLE_NAME, txid_current(), clock_timestamp());
      PERFORM pg_sleep(${seconds});
      RETURN NULL;
    END $$;
    CREATE FUNCTION ${s}.window_end() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
      INSERT INTO ${s}.windows VALUES (TG_TABLE_NAME, txid_current(), clock_timestamp());
      RETURN NULL;
    END $$;`);
  for (const t of tables) {
    await db.query(`CREATE TRIGGER window_start BEFORE INSERT ON ${s}."${t}" FOR EACH STATEMENT EXECUTE FUNCTION ${s}.window_start();
                    CREATE TRIGGER window_end AFTER INSERT ON ${s}."${t}" FOR EACH STATEMENT EXECUTE FUNCTION ${s}.window_end();`);
  }
}

interface Window {
  tbl: string;
  start: number;
  end: number;
}

async function windows(db: pg.ClientBase, schema: string): Promise<Window[]> {
  const { rows } = await db.query<{ tbl: string; start: Date; end: Date }>(
    `SELECT tbl, min(at) AS start, max(at) AS "end" FROM "${schema}".windows GROUP BY tbl, txid ORDER BY 2`,
  );
  return rows.map((r) => ({ tbl: r.tbl, start: r.start.getTime(), end: r.end.getTime() }));
}

const overlap = (a: Window, b: Window) => a.start < b.end && b.start < a.end;

describe('queue parallelism (G5)', () => {
  it('applies two streams at the same time on two worker processes', { timeout: 90_000 }, async () => {
    await withQueueFixture('queue_parallel', async ({ schema, connection, fleet, db }) => {
      const [a, b] = [keyed(schema, 'a'), keyed(schema, 'b')] as [IngestTable, IngestTable];
      await ingest(db, [a], () => []);
      await ingest(db, [b], () => []);
      await addSlowWindowTriggers(db, schema, ['a', 'b'], 0.4);
      const workers = [
        // One batch per transaction, so each batch's write window can be seen (coalescing is
        // tested in queue-coalescing.test.ts).
        fleet.start({ WORKER_CONCURRENCY: '1', LOG_LEVEL: 'info', COALESCE_MAX_BATCHES: '1' }),
        fleet.start({ WORKER_CONCURRENCY: '1', LOG_LEVEL: 'info', COALESCE_MAX_BATCHES: '1' }),
      ];
      await waitUntil(
        'both workers to start',
        async () => workers.every((w) => w.output.includes('worker started')),
        { timeoutMs: 60_000 },
      );
      const producer = new Producer({ redis: connection.redisUrl, ...connection });
      const PER_STREAM = 6;
      try {
        for (let i = 1; i <= PER_STREAM; i++) {
          for (const t of [a, b])
            await producer.enqueue({ tables: [t], highWatermark: i, rows: [[t, [i, `${t.name}${i}`]]] });
        }
        const streams = [`${schema}.a`, `${schema}.b`];
        await waitUntil(
          'both streams to commit',
          async () => [...(await committedSeqs(db, streams)).values()].every((seq) => seq === PER_STREAM),
          { timeoutMs: 60_000 },
        );
        const all = await windows(db, schema);
        const ofA = all.filter((w) => w.tbl === 'a');
        const ofB = all.filter((w) => w.tbl === 'b');
        assert.equal(ofA.length, PER_STREAM);
        assert.equal(ofB.length, PER_STREAM);
        // One stream: one batch at a time. Two streams: at the same time.
        for (const same of [ofA, ofB]) {
          for (let i = 1; i < same.length; i++) {
            assert.ok(
              !overlap(same[i] as Window, same[i - 1] as Window),
              'two batches of one stream overlapped',
            );
          }
        }
        const overlapping = ofA.filter((wa) => ofB.some((wb) => overlap(wa, wb))).length;
        assert.ok(
          overlapping >= 2,
          `only ${overlapping} batches of stream a overlapped one of stream b: the streams ran one after the other`,
        );
      } finally {
        await producer.close();
      }
    });
  });

  it('never deadlocks two streams that share tables listed in opposite orders', {
    timeout: 120_000,
  }, async () => {
    await withQueueFixture('queue_no_deadlock', async ({ schema, connection, fleet, db }) => {
      const [x, y] = [keyed(schema, 'x'), keyed(schema, 'y')] as [IngestTable, IngestTable];
      const BATCHES = 50;
      const KEYS = 20;
      fleet.start({ WORKER_CONCURRENCY: '2' });
      fleet.start({ WORKER_CONCURRENCY: '2' });
      const producers = [
        new Producer({ redis: connection.redisUrl, ...connection }),
        new Producer({ redis: connection.redisUrl, ...connection }),
      ];
      try {
        // Stream x writes x then y; stream y writes y then x; the same keys in both, so without one
        // global lock order their row locks would be taken in opposite orders.
        await Promise.all(
          (
            [
              [x, y],
              [y, x],
            ] as const
          ).map(async (tables, p) => {
            for (let i = 1; i <= BATCHES; i++) {
              const rows = tables.flatMap((t) =>
                Array.from({ length: KEYS }, (_, k) => [t, [k, `${tables[0].name}${i}`]] as const),
              );
              await (producers[p] as Producer).enqueue({ tables: [...tables], highWatermark: i, rows });
            }
          }),
        );
        const streams = [`${schema}.x`, `${schema}.y`];
        await waitUntil(
          'both streams to commit every batch',
          async () => [...(await committedSeqs(db, streams)).values()].every((seq) => seq === BATCHES),
          { timeoutMs: 90_000, explain: async () => JSON.stringify([...(await committedSeqs(db, streams))]) },
        );
        for (const t of ['x', 'y']) {
          assert.equal((await db.query(`SELECT count(*)::int AS n FROM "${schema}"."${t}"`)).rows[0].n, KEYS);
        }
        assert.deepEqual(fleet.logLines(/deadlock/i), [], 'a deadlock was detected and retried');
      } finally {
        await Promise.all(producers.map((p) => p.close()));
      }
    });
  });
});
