/**
 * G7 backpressure (a bound on pending batches or bytes per stream makes producers fail clearly or
 * wait), and large batches: stored in parts and committed atomically, or refused with a clear
 * error saying how to split, leaving nothing behind.
 */

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Redis } from 'ioredis';
import {
  defineTable,
  type IngestTable,
  ingest,
  PgBulkIngestError,
  Producer,
  type ProducerOptions,
} from '../../src/index.ts';
import { QueueKeys } from '../../src/queue/queue-keys.ts';
import { rejection } from '../helpers/ingest.ts';
import { type Connection, openQueue } from '../helpers/queue.ts';
import { withQueueFixture } from '../helpers/queue-fixture.ts';
import { committedSeqs } from '../helpers/stream-state.ts';
import { waitUntil } from '../helpers/wait.ts';

function table(schema: string): IngestTable {
  return defineTable({
    schema,
    name: 't',
    columns: [
      { name: 'id', type: 'integer', primaryKey: true },
      { name: 'payload', type: 'text' },
    ],
  });
}

function rowsBatch(t: IngestTable, from: number, count: number, payloadLength = 10) {
  return {
    tables: [t],
    highWatermark: from + count - 1,
    rows: Array.from(
      { length: count },
      (_, i) => [t, [from + i, `${from + i}:`.padEnd(payloadLength, 'x')]] as const,
    ),
  };
}

function producer(connection: Connection, options: ProducerOptions): Producer {
  return new Producer({ redis: connection.redisUrl, ...connection, ...options });
}

async function keys(redis: Redis, connection: Connection, pattern = '*'): Promise<string[]> {
  return (await redis.keys(`${connection.prefix}:${pattern}`)).sort();
}

function assertCode(error: unknown, code: string, message: RegExp) {
  assert.ok(error instanceof PgBulkIngestError, `expected a PgBulkIngestError, got ${error}`);
  assert.equal(error.code, code);
  assert.match(error.message, message);
}

describe('queue backpressure (G7)', () => {
  it("fails at once with BACKPRESSURE when a stream is full and onBackpressure is 'fail'", {
    timeout: 30_000,
  }, async () => {
    await withQueueFixture('queue_bp_fail', async ({ schema, connection }) => {
      const t = table(schema);
      const stream = `${schema}.t`;
      const { redis, close } = openQueue(connection);
      const failing = producer(connection, { maxPendingBatches: 3, onBackpressure: 'fail' });
      const patient = producer(connection, { maxPendingBatches: 3, backpressureTimeoutMs: 300 });
      try {
        for (let i = 0; i < 3; i++) await failing.enqueue(rowsBatch(t, i * 10, 10));
        const started = Date.now();
        assertCode(
          await rejection(() => failing.enqueue(rowsBatch(t, 100, 10))),
          'BACKPRESSURE',
          /too much pending \(3 batches.*Retry later, or raise maxPendingBatches/,
        );
        assert.ok(Date.now() - started < 250, 'fail means at once');
        // Waiting has a limit too (it gives up when its next backoff step would pass the deadline).
        const waiting = Date.now();
        assertCode(
          await rejection(() => patient.enqueue(rowsBatch(t, 100, 10))),
          'BACKPRESSURE',
          /too much pending/,
        );
        const waited = Date.now() - waiting;
        assert.ok(waited >= 100 && waited < 2000, `waited ${waited} ms with backpressureTimeoutMs 300`);
        // Nothing of the refused batches was stored.
        assert.equal((await failing.streamInfo(stream)).enqueuedSeq, 3);
        assert.equal((await keys(redis, connection, '*:part:*')).length, 3);
      } finally {
        await Promise.all([failing.close(), patient.close(), close()]);
      }
    });
  });

  it('bounds pending bytes too, but always lets one batch through on an empty stream', {
    timeout: 30_000,
  }, async () => {
    await withQueueFixture('queue_bp_bytes', async ({ schema, connection }) => {
      const t = table(schema);
      const p = producer(connection, {
        maxPendingBatches: 0,
        maxPendingBytes: 5_000,
        onBackpressure: 'fail',
      });
      try {
        assert.equal((await p.enqueue(rowsBatch(t, 0, 100, 60))).seq, 1); // ~8 KB alone: accepted
        assertCode(await rejection(() => p.enqueue(rowsBatch(t, 1000, 1))), 'BACKPRESSURE', /bytes/);
        assert.equal((await p.streamInfo(`${schema}.t`)).enqueuedSeq, 1);
      } finally {
        await p.close();
      }
    });
  });

  it("waits when onBackpressure is 'wait', and resolves once a worker makes room", {
    timeout: 60_000,
  }, async () => {
    await withQueueFixture('queue_bp_wait', async ({ schema, connection, fleet, db }) => {
      const t = table(schema);
      const stream = `${schema}.t`;
      const p = producer(connection, {
        maxPendingBatches: 3,
        onBackpressure: 'wait',
        backpressureTimeoutMs: 45_000,
      });
      try {
        for (let i = 0; i < 3; i++) await p.enqueue(rowsBatch(t, i * 10, 10));
        let settled = false;
        const fourth = p.enqueue(rowsBatch(t, 30, 10)).finally(() => {
          settled = true;
        });
        await sleep(800);
        assert.equal(settled, false, 'the 4th enqueue must wait while 3 are pending');
        assert.equal((await p.streamInfo(stream)).enqueuedSeq, 3);
        fleet.start();
        assert.deepEqual(await fourth, { stream, seq: 4, duplicate: false });
        await waitUntil(
          'all four batches',
          async () => (await committedSeqs(db, [stream])).get(stream) === 4,
          { timeoutMs: 30_000 },
        );
        assert.equal((await db.query(`SELECT count(*)::int AS n FROM "${schema}".t`)).rows[0].n, 40);
      } finally {
        await p.close();
      }
    });
  });
});

describe('queue large batches', () => {
  it('stores a ~2 MB batch in many small parts and commits it atomically', { timeout: 90_000 }, async () => {
    await withQueueFixture('queue_large', async ({ schema, connection, fleet, db }) => {
      const t = table(schema);
      const stream = `${schema}.t`;
      const ROWS = 20_000;
      await ingest(db, [t], () => []); // so its row count can be watched from the start
      const { redis, close } = openQueue(connection);
      const p = producer(connection, { partBytes: 10_000 });
      try {
        const { seq } = await p.enqueue(rowsBatch(t, 1, ROWS, 90));
        const header = JSON.parse(
          (await redis.get(new QueueKeys(connection.prefix).stream(stream).batch(seq))) as string,
        );
        assert.equal(header.rows, ROWS);
        assert.ok(header.bytes > 2_000_000, `batch bytes ${header.bytes}`);
        assert.ok(header.parts >= 150, `stored in ${header.parts} parts`);
        let largest = 0;
        for (const key of await keys(redis, connection, '*:part:*'))
          largest = Math.max(largest, await redis.strlen(key));
        assert.ok(largest < 10_000 + 200, `largest part ${largest} bytes`);

        fleet.start();
        // Watch from another session: nothing, then everything; never a part of the batch.
        const seen = new Set<number>();
        const deadline = Date.now() + 60_000;
        while (Date.now() < deadline) {
          const n = (await db.query(`SELECT count(*)::int AS n FROM "${schema}".t`)).rows[0].n as number;
          seen.add(n);
          if (n === ROWS) break;
          await sleep(10);
        }
        assert.deepEqual(
          [...seen].sort((a, b) => a - b),
          [0, ROWS],
        );
        const sum = await db.query(
          `SELECT sum(id)::bigint AS s, count(DISTINCT payload)::int AS d FROM "${schema}".t`,
        );
        assert.deepEqual(sum.rows[0], { s: String((ROWS * (ROWS + 1)) / 2), d: ROWS });
        await waitUntil(
          'the parts to be freed',
          async () => (await keys(redis, connection, '*:part:*')).length === 0,
          { timeoutMs: 10_000 },
        );
      } finally {
        await Promise.all([p.close(), close()]);
      }
    });
  });

  it('refuses a batch over maxBatchBytes with BATCH_TOO_LARGE, saying how to split, and stores nothing', {
    timeout: 30_000,
  }, async () => {
    await withQueueFixture('queue_too_large', async ({ schema, connection }) => {
      const t = table(schema);
      const { redis, close } = openQueue(connection);
      const p = producer(connection, { partBytes: 10_000, maxBatchBytes: 50_000 });
      try {
        const error = await rejection(() => p.enqueue(rowsBatch(t, 1, 2000, 50)));
        assertCode(
          error,
          'BATCH_TOO_LARGE',
          /larger than maxBatchBytes \(50000 bytes\) at row \d+: split it into smaller batches/,
        );
        // The parts uploaded before the limit was hit are gone; no stream, no batch, no gap.
        assert.deepEqual(await keys(redis, connection), []);
        assert.equal((await p.enqueue(rowsBatch(t, 1, 10))).seq, 1);
      } finally {
        await Promise.all([p.close(), close()]);
      }
    });
  });
});
