/**
 * Races between workers, producers and a Redis that lost data, found by a hostile review and
 * replayed here at the exact moment they need: a store call is wrapped to change Redis (as a
 * restart would) or to let another party act in between. Each test is named after what broke;
 * every one failed before its fix (a batch applied twice, or an acknowledged batch deleted).
 * Internals (StreamApplier, StreamStore) on the real Redis and PostgreSQL, one stream each.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { Redis } from 'ioredis';
import pg from 'pg';
import { defineTable, type IngestTable, Producer } from '../../src/index.ts';
import { type ApplyHooks, type CoalesceLimits, StreamApplier } from '../../src/queue/apply-stream.ts';
import { ensureStateTables } from '../../src/queue/stream-state.ts';
import { StreamStore } from '../../src/queue/stream-store.ts';
import { DATABASE_URL, dropSchema, uniqueName } from '../helpers/pg.ts';
import { cleanQueue, REDIS_URL, uniqueQueue } from '../helpers/queue.ts';

describe('queue races with a Redis that lost data', () => {
  const schema = uniqueName('redis_races');
  const names = uniqueQueue();
  const pool = new pg.Pool({ connectionString: DATABASE_URL, max: 4 });
  const redis = new Redis(REDIS_URL, { maxRetriesPerRequest: null });
  let producer: Producer;
  before(async () => {
    await ensureStateTables(pool);
    producer = new Producer({ redis: REDIS_URL, ...names });
  });
  after(async () => {
    await producer.close();
    redis.disconnect();
    await cleanQueue(names);
    await dropSchema(schema);
    await pool.end();
  });

  /** A stream of its own on a no-key table (a batch applied twice shows as two rows). */
  function streamNamed(name: string) {
    const table: IngestTable = defineTable({ schema, name, columns: [{ name: 'v', type: 'text' }] });
    const stream = `${schema}.${name}`;
    const store = new StreamStore(new Redis(REDIS_URL, { maxRetriesPerRequest: null }), names.prefix);
    const keys = store.keys.stream(stream);
    const enqueue = (v: string) =>
      producer.enqueue({ tables: [table], stream, highWatermark: v, rows: [[table, [v]]] });
    const applier = (hooks: ApplyHooks = {}, limits?: CoalesceLimits) =>
      new StreamApplier(pool, store, false, hooks, limits);
    return {
      stream,
      store,
      keys,
      enqueue,
      applier,
      /** Redis restarts empty: every key of the stream gone. */
      emptyRedis: async () => {
        for (const key of await redis.keys(`${keys.base}*`)) await redis.del(key);
      },
      /** b1, b2, b3 enqueued and committed: the history every race starts from. */
      commitThree: async () => {
        for (const v of ['b1', 'b2', 'b3']) await enqueue(v);
        await applier().drain(stream);
      },
      rows: async () =>
        (await pool.query(`SELECT v FROM "${schema}"."${name}" ORDER BY v`)).rows.map((r) => r.v as string),
      close: () => store.redis.disconnect(),
    };
  }
  /**
   * `store[method]` runs `meanwhile` on its first call, before the real call (the caller reads
   * what it did) or after it (the caller's view is taken, and now stale); later calls, those
   * `meanwhile` makes included, go straight through. Returns what puts the real method back.
   */
  function onFirstCall(
    store: StreamStore,
    method: 'info' | 'headers',
    when: 'before' | 'after',
    meanwhile: () => Promise<void>,
  ): () => void {
    const real = store[method].bind(store) as (...args: unknown[]) => Promise<unknown>;
    let first = true;
    const wrapped = async (...args: unknown[]) => {
      if (first && when === 'before') {
        first = false;
        await meanwhile();
      }
      const result = await real(...args);
      if (first && when === 'after') {
        first = false;
        await meanwhile();
      }
      return result;
    };
    const methods = store as unknown as Record<typeof method, unknown>;
    methods[method] = wrapped;
    return () => {
      methods[method] = real;
    };
  }
  const pausedAfterCommit: ApplyHooks = {
    fault: (point) => {
      if (point === 'after-commit') throw new Error('killed after COMMIT');
    },
  };

  it('regression: a batch numbered again after a loss is not applied under the old epoch, then again', async () => {
    const s = streamNamed('stale_headers');
    try {
      await s.commitThree();
      await s.enqueue('b4'); // acknowledged, then lost by Redis
      const restore = onFirstCall(s.store, 'headers', 'before', async () => {
        // Between the worker's two reads, Redis comes back without batch 4 (an older state,
        // another run id), and a producer appends X: numbered 4 again, in a new epoch.
        await redis.del(s.keys.batch(4));
        await redis.hset(s.keys.state, 'enqueuedSeq', 3, 'pendingBatches', 0, 'runId', 'deadbeef');
        assert.equal((await s.enqueue('X')).seq, 4);
      });
      // The first worker dies right after its COMMIT, before telling Redis; the next one carries on.
      await s
        .applier(pausedAfterCommit)
        .drain(s.stream)
        .catch(() => undefined);
      restore();
      await s.applier().drain(s.stream);
      assert.deepEqual(await s.rows(), ['X', 'b1', 'b2', 'b3'], 'X applied once');
    } finally {
      s.close();
    }
  });

  it("regression: a worker's stale view of Redis does not apply another worker's batches a second time", async () => {
    const s = streamNamed('stale_info');
    try {
      await s.commitThree();
      const restore = onFirstCall(s.store, 'info', 'after', async () => {
        // Redis restarts empty; a producer appends X1, X2; another worker commits X1 and is
        // killed before telling Redis.
        await s.emptyRedis();
        for (const v of ['X1', 'X2']) await s.enqueue(v);
        const single = { maxBatches: 1, maxRows: 1e9, maxBytes: 1e12 };
        await s
          .applier(pausedAfterCommit, single)
          .drain(s.stream)
          .catch(() => undefined);
      });
      await s.applier().drain(s.stream);
      restore();
      await s.applier().drain(s.stream);
      assert.deepEqual(await s.rows(), ['X1', 'X2', 'b1', 'b2', 'b3']);
    } finally {
      s.close();
    }
  });

  it('regression: catching Redis up does not delete a batch a producer appended meanwhile', async () => {
    const s = streamNamed('catch_up');
    try {
      await s.commitThree();
      // Redis comes back from an older state: enqueued 1, committed 1, another run id.
      await redis.hset(s.keys.state, 'enqueuedSeq', 1, 'committedSeq', 1, 'runId', 'deadbeef');
      const restore = onFirstCall(s.store, 'info', 'after', async () => {
        assert.equal((await s.enqueue('X')).seq, 2); // between the worker's look and its catch-up
      });
      await s.applier().drain(s.stream);
      restore();
      assert.equal(await redis.exists(s.keys.batch(2)), 1, 'the acknowledged batch is still there');
      await s.applier().drain(s.stream);
      assert.deepEqual(await s.rows(), ['X', 'b1', 'b2', 'b3']);
    } finally {
      s.close();
    }
  });

  it('regression: a late commit report of an epoch Redis lost frees none of the new batches', async () => {
    const s = streamNamed('late_mark');
    try {
      await s.commitThree();
      const epoch = (
        await pool.query('SELECT redis_epoch FROM bulk_ingest.stream_state WHERE stream = $1', [s.stream])
      ).rows[0]?.redis_epoch as string;
      // Redis restarts empty; X1 and X2 are acknowledged; then ioredis resends the worker's
      // unanswered commit report for (old epoch, 3).
      await s.emptyRedis();
      for (const v of ['X1', 'X2']) await s.enqueue(v);
      await s.store.markCommitted(s.stream, 3, epoch, 'b3', Date.now());
      assert.equal((await s.store.info(s.stream)).pendingBatches, 2);
      await s.applier().drain(s.stream);
      assert.deepEqual(await s.rows(), ['X1', 'X2', 'b1', 'b2', 'b3']);
    } finally {
      s.close();
    }
  });
});
