/**
 * G1 order: the batches of one stream commit in enqueue order, one at a time, whichever of three
 * worker PROCESSES takes which kick and whatever fails in between (transactions killed from
 * outside, a worker that SIGKILLs itself before COMMIT now and then).
 */
import assert from 'node:assert/strict';
import { randomInt } from 'node:crypto';
import { describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { defineTable, ingest, Producer } from '../../src/index.ts';
import { addCommitLog, assertCommitOrder, commitOrder } from '../helpers/commit-log.ts';
import { storedHighWatermark } from '../helpers/ingest.ts';
import { withQueueFixture } from '../helpers/queue-fixture.ts';
import { committedSeqs } from '../helpers/stream-state.ts';
import { waitUntil } from '../helpers/wait.ts';

const BATCHES_PER_PRODUCER = 100;
const KEYS = 80;

interface SentBatch {
  readonly marker: number;
  readonly rows: [id: number, marker: number, payload: string][];
  seq?: number;
}

/** 1 to 50 distinct keys out of KEYS, so batches overlap and the last writer of a key wins. */
function randomBatch(marker: number): SentBatch {
  const keys = new Set<number>();
  const size = randomInt(1, 51);
  while (keys.size < size) keys.add(randomInt(0, KEYS));
  return {
    marker,
    rows: [...keys].map((id) => [id, marker, `m${marker}-k${id}-${'x'.repeat(randomInt(0, 40))}`]),
  };
}

describe('queue order (G1): 3 worker processes, 2 producers, 200 batches on one stream', () => {
  it('commits in enqueue order despite killed transactions and worker crashes before COMMIT', {
    timeout: 180_000,
  }, async () => {
    await withQueueFixture('queue_order', async ({ schema, connection, fleet, db }) => {
      const table = defineTable({
        schema,
        name: 't',
        columns: [
          { name: 'id', type: 'integer', primaryKey: true },
          { name: 'marker', type: 'bigint' },
          { name: 'payload', type: 'text' },
        ],
      });
      const stream = `${schema}.t`;
      // The table exists before the first batch so the commit log trigger sees every batch.
      await ingest(db, [table], () => []);
      await addCommitLog(db, schema, 't');

      // Transient failures: a worker kills itself before COMMIT with probability 0.15 per transaction, and the
      // test terminates worker backends in the middle of a transaction. PGAPPNAME names this
      // test's workers' sessions, so no other test's are touched.
      const app = { PGAPPNAME: schema };
      // Every worker: one kick per stream is active at a time, so whichever worker holds it
      // drains the stream; the others wait. Groups of at most 5 batches: coalescing is on, and
      // there are still 40 or more transactions to fail.
      const env = { ...app, PGBI_TEST_FAULT: 'before-commit:0.15', COALESCE_MAX_BATCHES: '5' };
      for (let w = 0; w < 3; w++) fleet.start(env, 'faulty');
      let done = false;
      let terminated = 0;
      const supervisor = fleet.supervise();
      const terminator = (async () => {
        // Several a second, at most 15, only transactions already writing the batch.
        while (!done && terminated < 15) {
          await sleep(randomInt(50, 250));
          const { rows } = await db
            .query<{ ok: boolean }>(
              `SELECT pg_terminate_backend(pid) AS ok FROM pg_stat_activity
                WHERE application_name = $1 AND xact_start IS NOT NULL AND query ILIKE $2 LIMIT 1`,
              [schema, `%${schema}%`],
            )
            .catch(() => ({ rows: [] as { ok: boolean }[] }));
          if (rows[0]?.ok) terminated += 1;
        }
      })();

      const producers = [
        new Producer({ redis: connection.redisUrl, ...connection }),
        new Producer({ redis: connection.redisUrl, ...connection }),
      ];
      const sent: SentBatch[] = [];
      try {
        await Promise.all(
          producers.map(async (producer, p) => {
            for (let i = 0; i < BATCHES_PER_PRODUCER; i++) {
              const batch = randomBatch((p + 1) * 1000 + i);
              sent.push(batch);
              const result = await producer.enqueue({
                tables: [table],
                highWatermark: { marker: batch.marker },
                rows: batch.rows.map((values) => [table, values] as const),
              });
              assert.equal(result.stream, stream);
              batch.seq = result.seq;
              if (i % 10 === 0) await sleep(randomInt(0, 60)); // let workers interleave with producers
            }
          }),
        );
        const total = 2 * BATCHES_PER_PRODUCER;
        // Sequence numbers: 1..200, no gap, no duplicate, whichever producer enqueued.
        assert.deepEqual(
          sent.map((b) => b.seq).sort((a, b) => (a as number) - (b as number)),
          Array.from({ length: total }, (_, i) => i + 1),
        );

        await waitUntil(
          `stream ${stream} to commit seq ${total}`,
          async () => (await committedSeqs(db, [stream])).get(stream) === total,
          {
            timeoutMs: 120_000,
            explain: async () => `committed ${(await committedSeqs(db, [stream])).get(stream)}`,
          },
        );
        done = true;
        await terminator;
        const died = await supervisor.stop();

        // Contents = applying the batches in seq order with upsert semantics.
        const bySeq = [...sent].sort((a, b) => (a.seq as number) - (b.seq as number));
        const expected = new Map<number, [number, number, string]>();
        for (const batch of bySeq) for (const row of batch.rows) expected.set(row[0], row);
        const actual = (
          await db.query(`SELECT id, marker::int AS marker, payload FROM "${schema}".t ORDER BY id`)
        ).rows.map((r) => [r.id, r.marker, r.payload]);
        assert.deepEqual(
          actual,
          [...expected.values()].sort((a, b) => a[0] - b[0]),
        );

        // High watermark: the last batch's, in the table comment, the state table and the producer's view.
        const last = bySeq[total - 1] as SentBatch;
        assert.deepEqual(await storedHighWatermark(db, schema, 't'), { marker: last.marker });
        const state = await db.query(
          'SELECT high_watermark FROM bulk_ingest.stream_state WHERE stream = $1',
          [stream],
        );
        assert.deepEqual(state.rows[0]?.high_watermark, { marker: last.marker });
        assert.deepEqual(await producers[0]?.highWatermark(table), { marker: last.marker });

        // Commit order = seq order: each transaction (one batch, or several coalesced) wrote after
        // the previous one committed.
        const seqOfMarker = new Map(sent.map((b) => [b.marker, b.seq as number]));
        const transactions = assertCommitOrder(await commitOrder(db, schema, 't'), seqOfMarker, total);
        const retried = fleet.logLines(/batch failed; retrying/).length;
        const selfKilled = died.filter((w) => w.exit?.signal === 'SIGKILL').length;
        assert.ok(terminated + selfKilled > 0, 'no transient failure was injected: the run proves little');
        console.log(
          `order: ${total} batches in ${transactions} transactions, ${sent.reduce((n, b) => n + b.rows.length, 0)} rows, ${terminated} backends terminated, ` +
            `${selfKilled} worker crashes before COMMIT, ${died.length - selfKilled} other worker exits, ${retried} retries logged`,
        );
      } finally {
        done = true;
        await Promise.all([supervisor.stop(), terminator]);
        await Promise.all(producers.map((p) => p.close()));
      }
    });
  });

  it('keeps a worker process running when its transaction is killed mid-batch, and retries the batch', {
    timeout: 60_000,
  }, async () => {
    await withQueueFixture('queue_order_transient', async ({ schema, connection, fleet, db }) => {
      const t = defineTable({
        schema,
        name: 't',
        columns: [{ name: 'id', type: 'integer', primaryKey: true }],
      });
      await ingest(db, [t], () => []);
      await db.query(`CREATE FUNCTION "${schema}".slow() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN PERFORM pg_sleep(1); RETURN NULL; END $$;
                      CREATE TRIGGER slow BEFORE INSERT ON "${schema}".t FOR EACH STATEMENT EXECUTE FUNCTION "${schema}".slow();`);
      const producer = new Producer({ redis: connection.redisUrl, ...connection });
      try {
        await producer.enqueue({ tables: [t], highWatermark: 1, rows: [[t, [1]]] });
        const worker = fleet.start();
        const sleeping = `SELECT pg_terminate_backend(pid) AS ok FROM pg_stat_activity WHERE wait_event = 'PgSleep' AND query ILIKE $1`;
        await waitUntil(
          'a batch to kill',
          async () => (await db.query(sleeping, [`%${schema}%`])).rows.length > 0,
          { timeoutMs: 30_000 },
        );
        await Promise.race([worker.exited, sleep(3000)]);
        assert.equal(worker.alive, true, `the worker died: ${worker.output.slice(-1500)}`);
        await waitUntil(
          'the batch to be retried and committed',
          async () => (await committedSeqs(db, [`${schema}.t`])).get(`${schema}.t`) === 1,
          { timeoutMs: 20_000 },
        );
      } finally {
        await producer.close();
      }
    });
  });
});
