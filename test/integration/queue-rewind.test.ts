/**
 * Rewind: the stream's stored high watermark goes back to the one committed with batch N (from
 * the ledger), in the table comment, bulk_ingest.stream_state and Redis, so that a producer
 * using HighWatermark.LATEST sends again from there; refused while batches are pending or the
 * stream is blocked, unless forced.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  type Batch,
  defineTable,
  type IngestTable,
  type Json,
  type PgBulkIngestError,
} from '../../src/index.ts';
import { runCli } from '../helpers/cli.ts';
import { withClient } from '../helpers/pg.ts';
import { inProcessWorker, queueWithAdmin, withWorker } from '../helpers/queue.ts';
import { keyedTable } from '../helpers/tables.ts';
import { waitUntil } from '../helpers/wait.ts';

const SOURCE_ROWS = 10;

describe('rewind', () => {
  const { schema, names, connection, producer, admin, drain } = queueWithAdmin('rewind');
  const table = (name: string) => keyedTable(schema, name, []);

  /**
   * A source of rows 1..10 read two at a time from a high watermark (the last id sent), as an
   * incremental pipeline would; records the watermark it was called with.
   */
  function source(t: IngestTable, calls: (Json | null)[]) {
    return async function* (hw: Json | null): AsyncGenerator<Batch> {
      calls.push(hw);
      for (let last = ((hw as number | null) ?? 0) + 2; last <= SOURCE_ROWS; last += 2)
        yield [last, null, [last - 1, last].map((id) => [t, [id, `row ${id}`]] as const)];
    };
  }

  const drained = (stream: string, seq: number) => drain(stream, seq, { poisonRetries: 0 });

  const commentOf = (name: string) =>
    withClient(
      async (c) =>
        (await c.query(`SELECT obj_description($1::regclass, 'pg_class') AS c`, [`"${schema}"."${name}"`]))
          .rows[0]?.c as string,
    );

  it('then producer.ingest with HighWatermark.LATEST sends again from batch N', async () => {
    const t = table('resend');
    const stream = `${schema}.resend`;
    const calls: (Json | null)[] = [];
    assert.equal((await producer.ingest([t], source(t, calls))).length, 5); // seqs 1..5, hw 2, 4, ..., 10
    await drained(stream, 5);
    // Another key in the comment, which the rewind must keep.
    await withClient((c) =>
      c.query(
        `COMMENT ON TABLE "${schema}".resend IS '{"owner": "team-a", "pg-bulk-ingest": {"high-watermark": 10}}'`,
      ),
    );

    const result = await admin.rewind(stream, { toSeq: 2 });
    assert.deepEqual(
      [result.highWatermark, result.previousHighWatermark, result.committedSeq, result.forced],
      [4, 10, 5, false],
    );
    assert.equal(await commentOf('resend'), '{"owner": "team-a", "pg-bulk-ingest": {"high-watermark": 4}}');
    assert.equal((await admin.status(stream))[0]?.highWatermark, 4, 'bulk_ingest.stream_state');
    assert.equal(await producer.highWatermark(t), 4, 'Redis');

    const resent = await producer.ingest([t], source(t, calls));
    assert.deepEqual(calls, [null, 4], 'the second run started from batch 2');
    assert.deepEqual(
      resent.map((r) => r.seq),
      [6, 7, 8],
      'new batches, new numbers',
    );
    await drained(stream, 8);
    const history = await admin.history(stream, { limit: 3 });
    assert.deepEqual(
      history.map((e) => [e.seq, e.highWatermark]),
      [
        [8, 10],
        [7, 8],
        [6, 6],
      ],
    );
    const rows = await withClient(
      async (c) => (await c.query(`SELECT count(*)::int AS n FROM "${schema}".resend`)).rows[0]?.n,
    );
    assert.equal(rows, SOURCE_ROWS, 'an upsert re-send is idempotent');
    assert.equal(await commentOf('resend'), '{"owner": "team-a", "pg-bulk-ingest": {"high-watermark": 10}}');
    const recorded = await withClient(
      async (c) =>
        (
          await c.query(
            'SELECT to_seq, high_watermark, previous_high_watermark, committed_seq, forced FROM bulk_ingest.rewinds WHERE stream = $1',
            [stream],
          )
        ).rows,
    );
    assert.deepEqual(recorded, [
      { to_seq: '2', high_watermark: 4, previous_high_watermark: 10, committed_seq: '5', forced: false },
    ]);
  });

  it('CLI: is refused while batches are pending, saying why, unless --force', async () => {
    const t = table('pending');
    const stream = `${schema}.pending`;
    await producer.ingest([t], source(t, []), { highWatermark: 6 }); // seqs 1, 2: hw 8, 10
    await drained(stream, 2);
    await producer.enqueue({ tables: [t], highWatermark: 12, rows: [[t, [11, 'x']]] }); // seq 3, pending

    const refused = await runCli(['rewind', stream, '--to-seq', '1'], { connection });
    assert.equal(refused.code, 2, refused.stderr);
    assert.match(refused.stderr, /has 1 pending batch \(enqueued up to 3\).*--force/);
    assert.equal(await producer.highWatermark(t), 12, 'nothing changed');
    assert.match(await commentOf('pending'), /"high-watermark": 10/);

    const forced = await runCli(['rewind', stream, '--to-seq', '1', '--force'], { connection });
    assert.equal(forced.code, 0, forced.stderr);
    assert.match(forced.stdout, /Rewound .* to batch 1: high watermark 8 \(was 10\); the next batch is 3\./);
    assert.match(forced.stdout, /Forced: the stream has 1 pending batch/);
    assert.match(await commentOf('pending'), /"high-watermark": 8/);
    // The pending batch then commits, and its high watermark is the stream's.
    await drained(stream, 3);
    assert.match(await commentOf('pending'), /"high-watermark": 12/);
    const help = await runCli(['rewind', '--help'], { connection });
    assert.match(
      help.stdout.replace(/\s+/g, ' '),
      /Rows already in the tables stay: re-sending with an upsert is idempotent/,
    );
  });

  it('is refused while the stream is blocked, and to a batch skipped or not in the ledger', async () => {
    const t = defineTable({
      schema,
      name: 'blocked',
      columns: [
        { name: 'id', type: 'integer', primaryKey: true },
        { name: 'code', type: 'varchar(3)' },
      ],
    });
    const stream = `${schema}.blocked`;
    await producer.enqueue({ tables: [t], highWatermark: 1, rows: [[t, [1, 'ok']]] });
    await drained(stream, 1);
    // seq 2: poison, a value only PostgreSQL refuses (a CHECK constraint the definition does not know)
    await withClient((c) =>
      c.query(`ALTER TABLE "${schema}".blocked ADD CONSTRAINT no_bad CHECK (code <> 'bad')`),
    );
    await producer.enqueue({ tables: [t], highWatermark: 2, rows: [[t, [2, 'bad']]] });
    await withWorker(inProcessWorker(names, { poisonRetries: 0 }), () =>
      waitUntil('parked', async () => (await admin.status(stream))[0]?.blocked != null, {
        timeoutMs: 30_000,
      }),
    );
    await assert.rejects(admin.rewind(stream, { toSeq: 1 }), (e: PgBulkIngestError) => {
      assert.equal(e.code, 'STREAM_BUSY');
      assert.match(e.message, /is blocked at batch 2 \(/);
      return true;
    });
    await admin.skip(stream);
    await assert.rejects(admin.rewind(stream, { toSeq: 2 }), (e: PgBulkIngestError) => {
      assert.equal(e.code, 'REWIND_REFUSED');
      assert.match(e.message, /batch 2: it was skipped/);
      return true;
    });
    await assert.rejects(admin.rewind(stream, { toSeq: 9 }), /batch 9: it is not in the ledger/);
    assert.equal((await admin.rewind(stream, { toSeq: 1 })).highWatermark, 1);
  });
});
