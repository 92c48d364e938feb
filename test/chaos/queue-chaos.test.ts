/**
 * G4 crash safety under chaos: 4 worker processes, 300 batches over 3 streams (more until 3
 * workers were killed), a random worker `kill -9`ed about every second and restarted (one of them
 * also kills itself right after some COMMITs, before Redis hears of them). When the queue drains: nothing lost, nothing applied
 * twice (row count and content checksum per stream), and each stream committed in order.
 */
import assert from 'node:assert/strict';
import { randomInt } from 'node:crypto';
import { describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import type { IngestTable } from '../../src/index.ts';
import { Producer } from '../../src/index.ts';
import {
  createPlainStreamTable,
  enqueuePlain,
  plainBatch,
  type SentBatch,
  verifyPlainStream,
} from '../helpers/plain-stream.ts';
import { withQueueFixture } from '../helpers/queue-fixture.ts';
import { committedSeqs } from '../helpers/stream-state.ts';
import { waitUntil } from '../helpers/wait.ts';
import type { WorkerFleet } from '../helpers/worker-fleet.ts';

const STREAMS = 3;
/** Batches per stream, more (up to MAX_BATCHES_PER_STREAM) while the monkey has killed fewer than MIN_KILLS. */
const BATCHES_PER_STREAM = 100;
const MAX_BATCHES_PER_STREAM = 400;
const MIN_KILLS = 3;
const WORKERS = 4;

/** Every ~second, SIGKILLs a random working worker (started with LOG_LEVEL=info); the supervisor restarts it. */
function chaosMonkey(fleet: WorkerFleet, everyMs: [number, number] = [400, 900]) {
  let stopped = false;
  const killed = new Set<number>();
  const loop = (async () => {
    while (!stopped) {
      await sleep(randomInt(everyMs[0], everyMs[1]));
      // Only workers that have been working a while, and never the last one: on two cores a worker
      // takes seconds to start, and killing one that has not started tests nothing.
      const working = fleet.alive.filter((w) => w.startedAt !== undefined);
      const victims = working.filter((w) => Date.now() - (w.startedAt as number) > 1000);
      const victim = working.length >= 2 ? victims[randomInt(0, Math.max(1, victims.length))] : undefined;
      if (stopped || !victim) continue;
      killed.add(victim.pid);
      await victim.kill();
    }
  })();
  const supervisor = fleet.supervise(100);
  return {
    kills: () => killed.size,
    stop: async () => {
      stopped = true;
      await loop;
      const died = await supervisor.stop();
      return {
        kills: killed.size,
        selfKills: died.filter((w) => !killed.has(w.pid) && w.exit?.signal === 'SIGKILL').length,
        crashes: died.filter((w) => w.exit?.code !== null).length,
      };
    },
  };
}

describe('queue chaos (G4)', () => {
  it('loses and duplicates nothing while workers are kill -9ed every second', {
    timeout: 180_000,
  }, async () => {
    await withQueueFixture('queue_chaos', async ({ schema, connection, fleet, db }) => {
      const started = Date.now();
      // Workers first: they take seconds to start, the tables meanwhile.
      for (let w = 0; w < WORKERS; w++) {
        const fault = w === 0 ? { PGBI_TEST_FAULT: 'after-commit:0.03' } : {};
        fleet.start({ LOG_LEVEL: 'info', ...fault }, `worker-${w}`);
      }
      const tables: IngestTable[] = [];
      for (let s = 0; s < STREAMS; s++) tables.push(await createPlainStreamTable(db, schema, `s${s}`));
      const streams = tables.map((t) => `${schema}.${t.name}`);
      const monkey = chaosMonkey(fleet);
      const producer = new Producer({ redis: connection.redisUrl, ...connection });
      const sent: SentBatch[][] = tables.map(() => []);
      let stats = { kills: 0, selfKills: 0, crashes: 0 };
      const progress: string[] = [];
      const sampler = setInterval(async () => {
        const c = [...(await committedSeqs(db, streams).catch(() => new Map())).values()].reduce(
          (a: number, b: number) => a + b,
          0,
        );
        progress.push(
          `${Math.round((Date.now() - started) / 1000)}s:${c}/${sent.flat().length}/${fleet.alive.filter((w) => w.startedAt).length}`,
        );
      }, 2000);
      try {
        await Promise.all(
          tables.map(async (t, s) => {
            // However fast the workers are, the producers go on until the monkey has killed a
            // few of them: a run without kills would prove nothing.
            for (
              let i = 0;
              i < BATCHES_PER_STREAM || (monkey.kills() < MIN_KILLS && i < MAX_BATCHES_PER_STREAM);
              i++
            ) {
              const batch = plainBatch(s * 10_000 + i);
              batch.seq = (await enqueuePlain(producer, t, batch)).seq;
              (sent[s] as SentBatch[]).push(batch);
              // Batches arrive while workers drain: each drain finds a few pending and coalesces
              // them, so groups are being committed when workers are killed.
              await sleep(randomInt(30, 130));
            }
          }),
        );
        // Kills go on while producing and for the first 20 s of the drain; then the fleet gets to
        // finish. On a busy 2-core machine a worker takes seconds to start, and a monkey that
        // never stops can keep every worker restarting: that would test the machine, not us.
        const drained = async () => {
          const seqs = await committedSeqs(db, streams);
          return streams.every((stream, s) => seqs.get(stream) === sent[s]?.length);
        };
        await waitUntil('every stream to drain under kills', drained, { timeoutMs: 20_000 }).catch(
          () => undefined,
        );
        stats = await monkey.stop();
        await waitUntil('every stream to drain', drained, {
          timeoutMs: 90_000,
          explain: async () => JSON.stringify([...(await committedSeqs(db, streams))]),
        });
        clearInterval(sampler);
        console.log(`chaos progress (time:committed/enqueued/working workers): ${progress.join(' ')}`);
        const results = [];
        for (const [s, t] of tables.entries())
          results.push(await verifyPlainStream(db, schema, t.name, sent[s] as SentBatch[]));
        // Redis catches up too (a worker killed after COMMIT left its mirror behind), and is emptied.
        await waitUntil(
          'the Redis mirror to catch up',
          async () =>
            (await Promise.all(streams.map((s) => producer.streamInfo(s)))).every(
              (i, s) => i.committedSeq === sent[s]?.length && i.pendingBytes === 0,
            ),
          { timeoutMs: 20_000 },
        );
        console.log(
          `chaos: ${sent.flat().length} batches, ${results.reduce((n, r) => n + r.rows, 0)} rows over ${STREAMS} streams in ` +
            `${((Date.now() - started) / 1000).toFixed(1)} s; ${stats.kills} kill -9, ${stats.selfKills} self-kills after COMMIT, ` +
            `${stats.crashes} crashes, ${fleet.all.length} worker processes in all; checksums ${results.map((r) => r.checksum.slice(0, 8)).join(' ')}`,
        );
        assert.ok(stats.kills >= MIN_KILLS, `only ${stats.kills} kills: the run was not chaotic`);
      } finally {
        clearInterval(sampler);
        await monkey.stop();
        await producer.close();
      }
    });
  });
});
