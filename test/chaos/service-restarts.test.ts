/**
 * The services restarting under a running queue: PostgreSQL (`pg_ctl restart -m fast`) and Redis
 * with AOF (`--appendonly yes --appendfsync always`, killed with SIGKILL and started again on the
 * same directory). Every batch whose enqueue resolved is committed exactly once, in order.
 *
 * Both run on private, throw-away servers on free ports: restarting the shared PostgreSQL or
 * Redis would break every other test running at the same time (the runner runs files in
 * parallel) and anything else on the machine.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { chownSync, existsSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { promisify } from 'node:util';
import pg from 'pg';
import type { IngestTable } from '../../src/index.ts';
import { Producer } from '../../src/index.ts';
import { freePort } from '../helpers/free-port.ts';
import {
  createPlainStreamTable,
  enqueuePlain,
  plainBatch,
  type SentBatch,
  verifyPlainStream,
} from '../helpers/plain-stream.ts';
import { PrivateRedis } from '../helpers/private-redis.ts';
import { type QueueFixture, withQueueFixture } from '../helpers/queue-fixture.ts';
import { committedSeqs } from '../helpers/stream-state.ts';
import { waitUntil } from '../helpers/wait.ts';
import { describeWorker } from '../helpers/worker-fleet.ts';

const run = promisify(execFile);
const PG_BIN = existsSync('/etc/postgresql')
  ? `/usr/lib/postgresql/${readdirSync('/etc/postgresql')[0]}/bin`
  : '';
const canRunPostgres = process.getuid?.() === 0 && PG_BIN !== '' && existsSync(join(PG_BIN, 'initdb'));

/** Runs a PostgreSQL server program as the postgres user (initdb and postgres refuse root). */
function asPostgres(program: string, ...args: string[]) {
  return run('runuser', ['-u', 'postgres', '--', join(PG_BIN, program), ...args]);
}

/** A PostgreSQL cluster of our own, in a temporary directory, run as the postgres user. */
class PrivateCluster {
  dir = '';
  port = 0;
  get url() {
    return `postgres://postgres@127.0.0.1:${this.port}/postgres`;
  }
  async pgCtl(...args: string[]) {
    const [data, log] = [join(this.dir, 'data'), join(this.dir, 'log')];
    const options = `-p ${this.port} -k ${this.dir} -c listen_addresses=127.0.0.1`;
    await asPostgres('pg_ctl', '-D', data, '-l', log, '-o', options, '-w', ...args);
  }
  async start() {
    this.dir = mkdtempSync(join(tmpdir(), 'pgbi-pg-'));
    const id = async (flag: string) => Number((await run('id', [flag, 'postgres'])).stdout.trim());
    chownSync(this.dir, await id('-u'), await id('-g'));
    const data = join(this.dir, 'data');
    await asPostgres('initdb', '-D', data, '-A', 'trust', '-U', 'postgres', '--no-sync', '-E', 'UTF8');
    this.port = await freePort();
    await this.pgCtl('start');
  }
  async destroy() {
    await this.pgCtl('-m', 'immediate', 'stop').catch(() => undefined);
    if (this.dir) rmSync(this.dir, { recursive: true, force: true });
  }
}

const STREAMS = 2;

/**
 * Enqueues `perStream` batches on each stream at a steady pace, runs `disrupt` once the workers
 * have committed a few, waits until every stream drained, and checks it. Workers that die are
 * restarted (see the PostgreSQL test below for why they may).
 */
async function runThrough(
  f: QueueFixture,
  databaseUrl: string,
  perStream: number,
  disrupt: () => Promise<void>,
) {
  const tables: IngestTable[] = [];
  for (let s = 0; s < STREAMS; s++) tables.push(await createPlainStreamTable(f.db, f.schema, `s${s}`));
  const streams = tables.map((t) => `${f.schema}.${t.name}`);
  // Started before the first batch: workers keep up with the producer from the start, so commits
  // come a few batches at a time (coalescing would otherwise take the whole backlog in one
  // transaction, and the disruption would find nothing left to disrupt).
  const workers = Array.from({ length: 3 }, () => f.fleet.start({ LOG_LEVEL: 'info' }));
  await waitUntil('the workers to start', async () => workers.every((w) => w.startedAt !== undefined), {
    timeoutMs: 60_000,
  });
  const supervisor = f.fleet.supervise();
  const producer = new Producer({ redis: f.connection.redisUrl, ...f.connection });
  const check = new pg.Client({ connectionString: databaseUrl });
  check.on('error', () => undefined);
  const sent: SentBatch[][] = tables.map(() => []);
  try {
    const producing = Promise.all(
      tables.map(async (t, s) => {
        for (let i = 0; i < perStream; i++) {
          const batch = plainBatch(s * 10_000 + i, 20);
          batch.seq = (await enqueuePlain(producer, t, batch)).seq;
          (sent[s] as SentBatch[]).push(batch);
          await sleep(40);
        }
      }),
    );
    await waitUntil(
      'the first commits',
      async () => [...(await committedSeqs(f.db, streams)).values()].some((seq) => seq >= 5),
      { timeoutMs: 60_000 },
    );
    const committedBefore = [...(await committedSeqs(f.db, streams)).values()];
    await disrupt();
    await producing;
    await check.connect();
    await waitUntil(
      'every stream to drain',
      async () => [...(await committedSeqs(check, streams)).values()].every((seq) => seq === perStream),
      { timeoutMs: 60_000, explain: async () => JSON.stringify([...(await committedSeqs(check, streams))]) },
    );
    const died = await supervisor.stop();
    const results = [];
    for (const [s, t] of tables.entries()) {
      const ofStream = sent[s] as SentBatch[];
      assert.deepEqual(
        ofStream.map((b) => b.seq),
        Array.from({ length: perStream }, (_, i) => i + 1),
        'seqs without gap or duplicate',
      );
      results.push(await verifyPlainStream(check, f.schema, t.name, ofStream));
    }
    return { committedBefore, died, results, batches: STREAMS * perStream };
  } finally {
    await supervisor.stop();
    await producer.close();
    await check.end().catch(() => undefined);
  }
}

describe('service restarts', {
  skip: !canRunPostgres && 'needs root and the PostgreSQL server binaries',
}, () => {
  const cluster = new PrivateCluster();
  before(async () => cluster.start());
  after(async () => cluster.destroy());

  it('loses and duplicates no acknowledged batch when PostgreSQL restarts mid-run', {
    timeout: 120_000,
  }, async () => {
    await withQueueFixture(
      'svc_pg_restart',
      async (f) => {
        let restartMs = 0;
        const r = await runThrough(f, cluster.url, 60, async () => {
          const start = Date.now();
          await cluster.pgCtl('-m', 'fast', 'restart');
          restartMs = Date.now() - start;
        });
        const crashed = r.died.filter((w) => w.exit?.code !== 0);
        console.log(
          `postgres restart (${restartMs} ms) after commits ${r.committedBefore.join('/')}: ${r.batches} batches, ` +
            `${r.results.reduce((n, x) => n + x.rows, 0)} rows exactly once, checksums ${r.results.map((x) => x.checksum.slice(0, 8)).join(' ')}; ` +
            `${crashed.length} worker processes died and were restarted`,
        );
        for (const w of crashed) console.log(`  died: ${describeWorker(w).slice(-600)}`);
        assert.ok(
          r.committedBefore.some((seq) => seq < 60),
          'the restart must happen mid-run',
        );
      },
      { databaseUrl: cluster.url },
    );
  });

  it('keeps worker processes running when PostgreSQL restarts under a batch', {
    timeout: 90_000,
  }, async () => {
    await withQueueFixture(
      'svc_pg_survive',
      async ({ schema, connection, fleet, db }) => {
        const t = await createPlainStreamTable(db, schema, 's');
        await db.query(`CREATE FUNCTION "${schema}".slow() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN PERFORM pg_sleep(1); RETURN NULL; END $$;
                          CREATE TRIGGER slow BEFORE INSERT ON "${schema}".s FOR EACH STATEMENT EXECUTE FUNCTION "${schema}".slow();`);
        const producer = new Producer({ redis: connection.redisUrl, ...connection });
        try {
          const sent: SentBatch[] = [];
          for (let i = 0; i < 3; i++) {
            const batch = plainBatch(i, 5);
            batch.seq = (await enqueuePlain(producer, t, batch)).seq;
            sent.push(batch);
          }
          const worker = fleet.start();
          await waitUntil(
            'a batch in flight',
            async () =>
              (await db.query(`SELECT 1 FROM pg_stat_activity WHERE wait_event = 'PgSleep'`)).rows.length > 0,
            { timeoutMs: 60_000 },
          );
          await cluster.pgCtl('-m', 'fast', 'restart');
          await sleep(2000);
          assert.equal(worker.alive, true, `the worker died: ${worker.output.slice(-1500)}`);
          // And it carries on: the batch it was in the middle of is redone, once, then the rest.
          const check = new pg.Client({ connectionString: cluster.url });
          await check.connect();
          try {
            const stream = `${schema}.s`;
            await waitUntil(
              'the batches',
              async () => (await committedSeqs(check, [stream])).get(stream) === 3,
              { timeoutMs: 30_000 },
            );
            await verifyPlainStream(check, schema, 's', sent);
            assert.equal(worker.alive, true);
          } finally {
            await check.end();
          }
        } finally {
          await producer.close();
        }
      },
      { databaseUrl: cluster.url },
    );
  });

  it('commits every acknowledged batch exactly once when Redis (AOF, fsync always) is killed and restarted', {
    timeout: 120_000,
  }, async () => {
    const redis = new PrivateRedis();
    await redis.start();
    try {
      await withQueueFixture(
        'svc_redis_restart',
        async (f) => {
          let downMs = 0;
          const r = await runThrough(f, f.connection.databaseUrl, 60, async () => {
            const start = Date.now();
            await redis.crash();
            await sleep(300);
            await redis.start();
            downMs = Date.now() - start;
          });
          console.log(
            `redis kill -9 and restart (${downMs} ms down) after commits ${r.committedBefore.join('/')}: ${r.batches} acknowledged batches, ` +
              `${r.results.reduce((n, x) => n + x.rows, 0)} rows exactly once, checksums ${r.results.map((x) => x.checksum.slice(0, 8)).join(' ')}; ` +
              `${r.died.length} worker processes died and were restarted`,
          );
          assert.ok(
            r.committedBefore.some((seq) => seq < 60),
            'the restart must happen mid-run',
          );
        },
        { redisUrl: redis.url, cleanRedis: false },
      );
    } finally {
      await redis.destroy();
    }
  });
});
