/**
 * The ledger, bulk_ingest.batches: one row per batch, written in the batch's own transaction,
 * each batch of a coalesced transaction with its own row and counts; a skipped batch gets its
 * row when it is skipped.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { type LedgerEntry, StreamAdmin } from '../../src/index.ts';
import { runCli } from '../helpers/cli.ts';
import { withClient } from '../helpers/pg.ts';
import { inProcessWorker, queueWithAdmin, REDIS_URL, withWorker } from '../helpers/queue.ts';
import { withReadOnlyRole } from '../helpers/stream-state.ts';
import { keyedTable } from '../helpers/tables.ts';
import { waitUntil } from '../helpers/wait.ts';

interface Row {
  stream: string;
  seq: string;
  epoch: string | null;
  batch_id: string | null;
  table_schema: string | null;
  table_name: string | null;
  high_watermark: unknown;
  metadata: unknown;
  rows: Record<string, number>;
  rejected_rows: number;
  bytes: string | null;
  enqueued_at: Date | null;
  committed_at: Date;
  outcome: string;
}

async function ledger(stream: string): Promise<Row[]> {
  return withClient(
    async (c) =>
      (await c.query<Row>('SELECT * FROM bulk_ingest.batches WHERE stream = $1 ORDER BY seq', [stream])).rows,
  );
}

describe('ledger bulk_ingest.batches', () => {
  const { schema, names, connection, producer, admin, drain } = queueWithAdmin('ledger');
  const table = (name: string) => keyedTable(schema, name, []);

  it('has one row per batch applied alone, with its header and its rows per table', async () => {
    const main = table('single');
    const side = table('single_side');
    const stream = `${schema}.single`;
    const enqueuedBefore = Date.now();
    for (let n = 1; n <= 3; n++) {
      const rows = [
        ...Array.from({ length: n }, (_, i) => [main, [n * 10 + i, `m${i}`]] as const),
        ...Array.from({ length: 4 - n }, (_, i) => [side, [n * 10 + i, `s${i}`]] as const),
      ];
      await producer.enqueue({
        tables: [main, side],
        highWatermark: { n },
        metadata: { source: `file-${n}` },
        rows,
        batchId: `single-${n}`,
      });
    }
    const committed = await drain(stream, 3, { coalesceMaxBatches: 1 });
    assert.equal(committed.length, 3, 'one transaction per batch');
    const rows = await ledger(stream);
    assert.deepEqual(
      rows.map((r) => [Number(r.seq), r.batch_id, r.high_watermark, r.metadata, r.rows, r.outcome]),
      [1, 2, 3].map((n) => [
        n,
        `single-${n}`,
        { n },
        { source: `file-${n}` },
        { [`${schema}.single`]: n, [`${schema}.single_side`]: 4 - n },
        'committed',
      ]),
    );
    for (const r of rows) {
      assert.equal(r.rejected_rows, 0);
      assert.deepEqual([r.table_schema, r.table_name], [schema, 'single']);
      assert.ok(r.epoch, 'the Redis epoch is recorded');
      assert.ok(Number(r.bytes) > 0, 'bytes');
      assert.ok(r.enqueued_at && r.enqueued_at.getTime() >= enqueuedBefore - 1000, 'enqueued_at');
      assert.ok(r.enqueued_at && r.committed_at.getTime() >= r.enqueued_at.getTime() - 1000, 'committed_at');
    }
  });

  it('has one row per batch of a coalesced transaction, in order, each with its own counts', async () => {
    const t = table('coalesced');
    const stream = `${schema}.coalesced`;
    const sizes = [3, 1, 4, 1, 5, 9, 2, 6];
    for (const [i, size] of sizes.entries()) {
      // Keys overlap between batches: an upsert replaces rows, and each batch still counts its own.
      const rows = Array.from({ length: size }, (_, j) => [t, [j, `batch ${i + 1}`]] as const);
      await producer.enqueue({ tables: [t], highWatermark: i + 1, metadata: { i }, rows });
    }
    const committed = await drain(stream, sizes.length);
    assert.ok(
      committed.length < sizes.length,
      `coalesced into fewer transactions (${committed.length} for ${sizes.length} batches)`,
    );
    const rows = await ledger(stream);
    assert.deepEqual(
      rows.map((r) => [Number(r.seq), r.high_watermark, r.metadata, r.rows]),
      sizes.map((size, i) => [i + 1, i + 1, { i }, { [stream]: size }]),
    );
    // Batches of one transaction share its commit, and are in seq order.
    const times = rows.map((r) => r.committed_at.getTime());
    assert.deepEqual(
      times,
      [...times].sort((a, b) => a - b),
    );
  });

  it('gives a skipped batch its row when it is skipped, with nothing written', async () => {
    const t = table('skipped');
    const stream = `${schema}.skipped`;
    await producer.enqueue({
      tables: [t],
      highWatermark: 'hw-1',
      metadata: { why: 'bad file' },
      rows: [[t, [1, 'x']]],
      batchId: 'to-skip',
    });
    assert.equal(await admin.skip(stream, { reason: 'a bad file' }), 1);
    const [row, ...rest] = await ledger(stream);
    assert.equal(rest.length, 0);
    assert.ok(row);
    assert.deepEqual(
      [Number(row.seq), row.batch_id, row.outcome, row.rows, row.high_watermark, row.metadata],
      [1, 'to-skip', 'skipped', {}, 'hw-1', { why: 'bad file' }],
    );
    assert.ok(Number(row.bytes) > 0);
  });

  it('is pruned by the workers past its retention, old rows deleted and recent ones kept', async () => {
    const stream = `${schema}.retention`;
    const ages = [400, 45, 31, 29, 1]; // days; the default retention is 30
    await withClient((c) =>
      c.query(
        `INSERT INTO bulk_ingest.batches (stream, seq, committed_at, outcome)
         SELECT $1, n, now() - make_interval(days => (($2::int[])[n])), 'committed'
         FROM generate_series(1, cardinality($2::int[])) AS n`,
        [stream, ages],
      ),
    );
    const worker = inProcessWorker(names);
    // It prunes once as it starts, then every 10 minutes.
    await withWorker(worker, async () => {
      await waitUntil('pruning', async () => (await ledger(stream)).length < ages.length, {
        timeoutMs: 10_000,
      });
      assert.deepEqual(
        (await ledger(stream)).map((r) => Number(r.seq)),
        [4, 5],
      );
      assert.equal(await worker.pruneLedger(), 0, 'nothing left to prune');
    });
  });

  it('history: the CLI prints the ledger newest first, --limit bounds it, --json gives the entries', async () => {
    const t = table('history');
    const stream = `${schema}.history`;
    for (let n = 1; n <= 3; n++)
      await producer.enqueue({
        tables: [t],
        highWatermark: `hw-${n}`,
        rows: [[t, [n, 'x']]],
        batchId: `h-${n}`,
      });
    await drain(stream, 3);
    const text = await runCli(['history', stream, '--limit', '2'], { connection });
    assert.equal(text.code, 0, text.stderr);
    const lines = text.stdout.trim().split('\n');
    assert.match(
      lines[0] ?? '',
      /^seq +outcome +committed at +batch id +rows +rejected +bytes +high watermark$/,
    );
    assert.equal(lines.length, 3, text.stdout);
    assert.match(
      lines[1] ?? '',
      new RegExp(`^3 +committed +\\S+ +h-3 +${schema}\\.history=1 +0 +\\d+ +"hw-3"$`),
    );
    assert.match(lines[2] ?? '', /^2 +committed .* h-2 .*"hw-2"$/);
    const json = await runCli(['history', stream, '--json'], { connection });
    assert.deepEqual(
      (JSON.parse(json.stdout) as LedgerEntry[]).map((e) => [e.seq, e.batchId, e.outcome, e.rows]),
      [3, 2, 1].map((n) => [n, `h-${n}`, 'committed', { [stream]: 1 }]),
    );
    const bad = await runCli(['history', stream, '--limit', '0'], { connection });
    assert.notEqual(bad.code, 0);
    assert.match(bad.stderr, /--limit expects an integer >= 1, got "0"/);
  });

  it('history works for a role that may only read bulk_ingest', async () => {
    const t = table('history_reader');
    const stream = `${schema}.history_reader`;
    await producer.enqueue({ tables: [t], highWatermark: 1, rows: [[t, [1, 'x']]] });
    await drain(stream, 1);
    await withReadOnlyRole(async (databaseUrl) => {
      const reader = new StreamAdmin({ databaseUrl, redis: REDIS_URL, ...names });
      try {
        assert.deepEqual(
          (await reader.history(stream)).map((e) => [e.seq, e.outcome]),
          [[1, 'committed']],
        );
        assert.deepEqual(await reader.history(`${schema}.never`), []);
      } finally {
        await reader.close();
      }
    });
  });

  it("is written in the batch's transaction: a batch that rolls back leaves no row", async () => {
    const t = table('rolled_back');
    const stream = `${schema}.rolled_back`;
    await producer.enqueue({ tables: [t], highWatermark: 1, rows: [[t, [1, 'x']]], batchId: 'once' });
    const worker = inProcessWorker(names, {
      poisonRetries: 0,
      // After the ledger row is written, before COMMIT.
      fault: (point, s) => {
        if (point === 'before-commit' && s === stream) throw new Error('injected before COMMIT');
      },
    });
    await withWorker(worker, () =>
      waitUntil('parked', async () => (await admin.status(stream))[0]?.blocked != null, {
        timeoutMs: 30_000,
      }),
    );
    assert.deepEqual(await ledger(stream), [], 'the row rolled back with the batch');
    await admin.retry(stream);
    await drain(stream, 1);
    assert.deepEqual(
      (await ledger(stream)).map((r) => [Number(r.seq), r.batch_id, r.outcome]),
      [[1, 'once', 'committed']],
    );
  });

  it('replaces the row of a seq numbered again in a new Redis epoch (after Redis lost data)', async () => {
    const t = table('epochs');
    const stream = `${schema}.epochs`;
    // The row an earlier epoch left for seq 1 (Redis then lost the stream and numbers from 1 again).
    await withClient((c) =>
      c.query(
        `INSERT INTO bulk_ingest.batches (stream, seq, epoch, batch_id, rows, outcome)
         VALUES ($1, 1, 'lost-epoch', 'old', '{"x": 5}', 'committed')`,
        [stream],
      ),
    );
    await producer.enqueue({ tables: [t], highWatermark: 1, rows: [[t, [1, 'x']]], batchId: 'new' });
    await drain(stream, 1);
    const rows = await ledger(stream);
    assert.deepEqual(
      rows.map((r) => [Number(r.seq), r.batch_id, r.rows]),
      [[1, 'new', { [stream]: 1 }]],
    );
    assert.notEqual(rows[0]?.epoch, 'lost-epoch');
  });
});
