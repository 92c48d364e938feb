/**
 * BadRows.QUARANTINE through the queue: a batch's refused rows are quarantined by the worker
 * with their stream, seq and row number (the Producer lets a bad value through, and the worker
 * gives the Producer's reason); replay after a fix in SQL commits the row exactly once.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type pg from 'pg';
import {
  BadRows,
  type CommittedBatch,
  defineTable,
  ingest,
  Producer,
  type Row,
  StreamAdmin,
  Upsert,
} from '../../src/index.ts';
import { createMetrics, type PgbiMetrics } from '../../src/ops/metrics.ts';
import { attachWorkerMetrics } from '../../src/ops/worker-metrics.ts';
import { rejectedRowsPerSeq } from '../../src/queue/apply-stream.ts';
import { runCli } from '../helpers/cli.ts';
import { connect, DATABASE_URL, dropSchema, uniqueName } from '../helpers/pg.ts';
import { cleanQueue, inProcessQueue, inProcessWorker, REDIS_URL, uniqueQueue } from '../helpers/queue.ts';
import { eventsTable, rowsWithThreeBad } from '../helpers/tables.ts';
import { waitUntil } from '../helpers/wait.ts';

describe('queue with BadRows.QUARANTINE', () => {
  const queue = inProcessQueue();
  const schema = uniqueName('queue_quarantine');
  let db: pg.Client;
  let admin: StreamAdmin;
  before(async () => {
    db = await connect();
    admin = new StreamAdmin({
      databaseUrl: process.env.TEST_DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/test',
      redis: REDIS_URL,
      ...queue.names,
    });
  });
  after(async () => {
    await admin.close();
    await db.end();
    await dropSchema(schema);
  });
  const table = eventsTable(schema);
  const stream = `${schema}.events`;
  const count = async () =>
    Number((await db.query(`SELECT count(*) AS n FROM "${schema}".events`)).rows[0]?.n);

  it('a 10,000-row batch with a bad timestamp, a NULL in a NOT NULL column and a duplicate key: 9,997 rows committed, 3 quarantined with seq and row number, high watermark moved', async () => {
    const rows = rowsWithThreeBad(table, 10_000); // bad: rows 1,000, 5,000 and 9,000
    const { seq } = await queue.producer.enqueue({
      tables: [table],
      highWatermark: 'hwm-1',
      rows,
      options: { badRows: BadRows.QUARANTINE, upsert: Upsert.OFF },
    });
    await waitUntil('the batch', async () => (await admin.status(stream))[0]?.committedSeq === seq, {
      timeoutMs: 30_000,
    });
    assert.equal(await count(), 9_997);
    const rejected = await admin.rejected(stream);
    assert.deepEqual(
      rejected.map((r) => [r.seq, r.rowNumber, r.sqlState, r.tableName]),
      [
        [seq, 1000, null, 'events'], // the Producer's validation refused both: quarantined unsent
        [seq, 5000, null, 'events'],
        [seq, 9000, '23505', 'events'],
      ],
    );
    // The Producer's validation let them through, marked; the worker gives its reasons.
    assert.match(rejected[0]?.message ?? '', /column "at" \(timestamptz\)/);
    assert.match(rejected[1]?.message ?? '', /column "label" \(text\): is null, but the column is NOT NULL/);
    assert.deepEqual(rejected[1]?.row, [5000, null, null]);
    assert.equal((await admin.status(stream))[0]?.highWatermark, 'hwm-1');
  });

  it('replay after fixing one row in SQL commits it exactly once and marks it replayed', async () => {
    const [, nullRow] = await admin.rejected(stream);
    assert.ok(nullRow);
    await db.query(
      `UPDATE bulk_ingest.rejected_rows SET "row" = jsonb_set("row", '{2}', '"fixed"') WHERE id = $1`,
      [nullRow.id],
    );
    const { seq, ids } = await admin.replay(stream, { ids: [nullRow.id] });
    assert.deepEqual(ids, [nullRow.id]);
    await waitUntil('the replay', async () => (await admin.status(stream))[0]?.committedSeq === seq, {
      timeoutMs: 30_000,
    });
    const rows = await db.query(`SELECT label FROM "${schema}".events WHERE id = 5000`);
    assert.deepEqual(rows.rows, [{ label: 'fixed' }]);
    const after = await admin.rejected(stream);
    assert.ok(after.find((r) => r.id === nullRow.id)?.replayedAt instanceof Date);
    assert.equal(after.filter((r) => r.replayedAt === null).length, 2);
    assert.equal((await admin.status(stream))[0]?.highWatermark, 'hwm-1');
  });

  it('`pg-bulk-ingest rejected <stream> --json` lists what StreamAdmin.rejected() does', async () => {
    const connection = { databaseUrl: DATABASE_URL, redisUrl: REDIS_URL, ...queue.names };
    const listed = await runCli(['rejected', stream, '--json'], { connection });
    assert.equal(listed.code, 0, listed.stderr);
    const fromCli = (JSON.parse(listed.stdout) as { id: number; replayedAt: string | null }[]).map((r) => [
      r.id,
      r.replayedAt !== null,
    ]);
    assert.deepEqual(
      fromCli,
      (await admin.rejected(stream)).map((r) => [r.id, r.replayedAt !== null]),
    );
  });

  it('`pg-bulk-ingest replay <stream>` replays every row not replayed yet; a duplicate key is quarantined again, not overwriting the row (Upsert.OFF)', async () => {
    const connection = { databaseUrl: DATABASE_URL, redisUrl: REDIS_URL, ...queue.names };
    const pending = (await admin.rejected(stream)).filter((r) => r.replayedAt === null);
    assert.deepEqual(pending.map((r) => r.sqlState).sort(), ['23505', null]);
    const replayed = await runCli(['replay', stream], { connection });
    assert.equal(replayed.code, 0, replayed.stderr);
    const seq = Number(/as batch (\d+) of/.exec(replayed.stdout)?.[1]);
    await waitUntil('the replay', async () => (await admin.status(stream))[0]?.committedSeq === seq, {
      timeoutMs: 30_000,
    });
    const label = await db.query(`SELECT label FROM "${schema}".events WHERE id = 10`);
    assert.equal(label.rows[0]?.label, 'row 10');
    const all = await admin.rejected(stream);
    assert.ok(pending.every((p) => all.find((r) => r.id === p.id)?.replayedAt instanceof Date));
    assert.deepEqual(
      all
        .filter((r) => r.seq === seq)
        .map((r) => r.sqlState)
        .sort(),
      ['23505', null],
    );
  });

  it('`pg-bulk-ingest enqueue --bad-rows quarantine`: a value the CLI would refuse travels, and the worker quarantines its row', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'pgbi-quarantine-'));
    const file = join(dir, 'rows.csv');
    writeFileSync(file, 'id,label\n1,one\nabc,two\n3,three\n');
    const connection = { databaseUrl: DATABASE_URL, redisUrl: REDIS_URL, ...queue.names };
    const cliStream = `${schema}.cli`;
    const args = [
      'enqueue',
      file,
      '--schema',
      schema,
      '--table',
      'cli',
      '--columns',
      'id:integer:pk,label:text',
    ];
    try {
      const refused = await runCli(args, { connection });
      assert.notEqual(refused.code, 0, 'without --bad-rows quarantine the CLI refuses the file');
      const enqueued = await runCli([...args, '--bad-rows', 'quarantine'], { connection });
      assert.equal(enqueued.code, 0, enqueued.stderr);
      await waitUntil('the CLI batch', async () => (await admin.status(cliStream))[0]?.committedSeq === 1, {
        timeoutMs: 30_000,
      });
      const ids = await db.query(`SELECT id FROM "${schema}".cli ORDER BY id`);
      assert.deepEqual(
        ids.rows.map((r) => r.id),
        [1, 3],
      );
      const rejected = await admin.rejected(cliStream);
      assert.deepEqual(
        rejected.map((r) => [r.rowNumber, r.row]),
        [[2, ['abc', 'two']]],
      );
      assert.match(rejected[0]?.message ?? '', /column "id" \(integer\): expected an integer/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('a replayed row refused again is quarantined again with a new id', async () => {
    const [timeRow] = (await admin.rejected(stream)).filter((r) => r.replayedAt === null);
    assert.ok(timeRow);
    const { seq } = await admin.replay(stream, { ids: [timeRow.id] });
    await waitUntil('the replay', async () => (await admin.status(stream))[0]?.committedSeq === seq, {
      timeoutMs: 30_000,
    });
    const again = (await admin.rejected(stream)).filter((r) => r.seq === seq);
    assert.equal(again.length, 1);
    assert.notEqual(again[0]?.id, timeRow.id);
    assert.equal(again[0]?.sqlState ?? null, timeRow.sqlState ?? null, 'refused again for the same reason');
    assert.equal(again[0]?.message, timeRow.message);
  });
});

describe('queue with BadRows.QUARANTINE: batches found pending together', () => {
  const schema = uniqueName('queue_quarantine_group');
  const names = uniqueQueue();
  after(async () => {
    await cleanQueue(names);
    await dropSchema(schema);
  });
  const table = (name: string) =>
    defineTable({
      schema,
      name,
      columns: [
        { name: 'id', type: 'integer', primaryKey: true },
        { name: 'n', type: 'integer', nullable: false },
      ],
    });

  /** Enqueues with no worker running, then lets one worker (no retries: a poison batch parks at once) drain them. */
  async function drain(
    enqueue: (producer: Producer) => Promise<void>,
    until: (admin: StreamAdmin) => Promise<boolean>,
  ): Promise<{ committed: CommittedBatch[]; admin: StreamAdmin; metrics: PgbiMetrics }> {
    const producer = new Producer({ redis: REDIS_URL, ...names });
    const admin = new StreamAdmin({ databaseUrl: DATABASE_URL, redis: REDIS_URL, ...names });
    const worker = inProcessWorker(names, { concurrency: 1, poisonRetries: 0 });
    const committed: CommittedBatch[] = [];
    worker.on('committed', (batch) => committed.push(batch));
    const metrics = createMetrics({ defaultMetrics: false });
    const detach = attachWorkerMetrics(metrics, worker, { databaseUrl: DATABASE_URL });
    try {
      await enqueue(producer);
      await worker.start();
      await waitUntil('the stream', () => until(admin), { timeoutMs: 30_000 });
      return { committed, admin, metrics };
    } finally {
      await detach();
      await worker.close();
      await producer.close();
    }
  }

  it('each quarantined row of a coalesced group carries its own batch seq and its row number in that batch', async () => {
    const t = table('grouped');
    const stream = `${schema}.grouped`;
    const { committed, admin, metrics } = await drain(
      async (producer) => {
        for (let b = 0; b < 5; b++) {
          // Batch b (seq b + 1): 10 rows, row b + 2 has a NULL; "x" (not an integer) in batch 3,
          // row 7; " 7" in batch 4, row 9: PostgreSQL would take it, the Producer's validation not.
          const value = (i: number) => (b === 2 && i === 6 ? 'x' : b === 3 && i === 8 ? ' 7' : i);
          const rows = Array.from(
            { length: 10 },
            (_, i): Row => [t, [b * 10 + i + 1, i === b + 1 ? null : value(i)]],
          );
          await producer.enqueue({
            tables: [t],
            highWatermark: b + 1,
            rows,
            options: { badRows: BadRows.QUARANTINE },
          });
        }
      },
      async (a) => (await a.status(stream))[0]?.committedSeq === 5,
    );
    try {
      assert.ok(
        committed.some((c) => c.headers.length > 1),
        'the batches were coalesced',
      );
      const rejected = await admin.rejected(stream);
      assert.deepEqual(
        rejected.map((r) => [r.seq, r.rowNumber, r.sqlState]),
        [
          // Refused by the Producer's validation: quarantined unsent (no SQLSTATE), with its reason.
          [1, 2, null],
          [2, 3, null],
          [3, 4, null],
          [3, 7, null],
          [4, 5, null],
          [4, 9, null],
          [5, 6, null],
        ],
      );
      assert.match(rejected[0]?.message ?? '', /column "n" \(integer\): is null, but the column is NOT NULL/);
      assert.match(
        rejected[3]?.message ?? '',
        /column "n" \(integer\): expected an integer or a string of digits, got "x"/,
      );
      assert.deepEqual(rejected[5]?.row, [39, ' 7']);
      assert.equal(
        committed.reduce((n, c) => n + c.report.rejectedRows, 0),
        7,
      );
      // Per batch, as the ledger counts them (coalesced batches each their own).
      const perSeq = new Map<number, number>();
      for (const c of committed) {
        const first = c.seq - c.headers.length + 1;
        for (const [seq, n] of rejectedRowsPerSeq(stream, first, c.headers, c.report.rejected))
          perSeq.set(seq, n);
      }
      assert.deepEqual(
        [...perSeq].sort(([a], [b]) => a - b),
        [
          [1, 1],
          [2, 1],
          [3, 2],
          [4, 2],
          [5, 1],
        ],
      );
      const counted = (await metrics.rejectedRows.get()).values.find((v) => v.labels.table === stream);
      assert.equal(counted?.value, 7);
    } finally {
      await admin.close();
    }
  });

  it('the same rows replayed twice before either commits: the second replay is parked, the rows written once', async () => {
    // No primary key: nothing else would stop the rows being written twice.
    const t = defineTable({
      schema,
      name: 'twice',
      columns: [{ name: 'n', type: 'integer', nullable: false }],
    });
    const stream = `${schema}.twice`;
    const client = await connect();
    const replayer = new StreamAdmin({ databaseUrl: DATABASE_URL, redis: REDIS_URL, ...names });
    try {
      await ingest(
        client,
        [t],
        () => [
          [
            'h',
            null,
            [
              [t, [1]],
              [t, [null]],
            ] as Row[],
          ],
        ],
        {
          badRows: BadRows.QUARANTINE,
        },
      );
      const [rejected] = await replayer.rejected(stream);
      assert.ok(rejected);
      await client.query('UPDATE bulk_ingest.rejected_rows SET "row" = \'[2]\' WHERE id = $1', [rejected.id]);
      const { admin } = await drain(
        async () => {
          await replayer.replay(stream, { ids: [rejected.id] });
          await replayer.replay(stream, { ids: [rejected.id] });
        },
        async (a) => (await a.status(stream))[0]?.blocked !== null,
      );
      try {
        const status = (await admin.status(stream))[0];
        assert.equal(status?.committedSeq, 1);
        assert.match(status?.blocked?.reason ?? '', /another replay already committed/);
        const rows = await client.query(`SELECT n FROM "${schema}".twice ORDER BY n`);
        assert.deepEqual(
          rows.rows.map((r) => r.n),
          [1, 2],
        );
        await assert.rejects(replayer.replay(stream, { ids: [rejected.id] }), /were replayed already/);
      } finally {
        await admin.close();
      }
    } finally {
      await replayer.close();
      await client.end();
    }
  });

  it('more than maxBadRows refused rows park the batch, quarantining nothing', async () => {
    const t = table('parked');
    const stream = `${schema}.parked`;
    const { admin } = await drain(
      async (producer) => {
        const rows = Array.from({ length: 20 }, (_, i): Row => [t, [i + 1, i % 4 === 0 ? null : i]]);
        await producer.enqueue({
          tables: [t],
          highWatermark: 1,
          rows,
          options: { badRows: BadRows.QUARANTINE, maxBadRows: 3 },
        });
      },
      async (a) => (await a.status(stream))[0]?.blocked !== null,
    );
    try {
      const status = (await admin.status(stream))[0];
      assert.equal(status?.blocked?.seq, 1);
      assert.match(status?.blocked?.reason ?? '', /more than maxBadRows \(3\)/);
      assert.deepEqual(await admin.rejected(stream), []);
    } finally {
      await admin.close();
    }
  });
});
