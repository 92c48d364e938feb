/**
 * Worker PROCESSES for the queue tests: `pg-bulk-ingest worker` spawned from source with tsx,
 * killed with SIGKILL (as `kill -9`) or stopped with SIGTERM, their output kept for diagnostics.
 * Plus what every multi-process queue test needs: a fixture with its own schema, queue and
 * prefix that is cleaned up (processes killed first) even when the test fails, the CLI, and a
 * commit log trigger that shows in which order batches really committed.
 */
import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import { createHash, randomInt } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import { Queue } from 'bullmq';
import { Redis } from 'ioredis';
import pg from 'pg';
import type { Producer } from '../../src/index.ts';
import { defineTable, type IngestTable, ingest, Upsert } from '../../src/index.ts';
import { bullQueues } from '../../src/queue/queue-config.ts';
import { DATABASE_URL, uniqueName } from './pg.ts';
import { cleanQueue, REDIS_URL } from './queue.ts';

export const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const CLI = 'src/ops/cli/main.ts';

export interface Exit {
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
}

export interface Connection {
  readonly databaseUrl: string;
  readonly redisUrl: string;
  readonly queueName: string;
  readonly prefix: string;
}

/** Every child still running, killed when the test process exits, whatever happened. */
const running = new Set<ChildProcess>();
process.on('exit', () => {
  for (const child of running) child.kill('SIGKILL');
});

/** The environment of a child: ours, minus the test runner's and any inherited fault. */
function childEnv(extra: Record<string, string | undefined>): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env };
  for (const key of ['NODE_TEST_CONTEXT', 'PGBI_TEST_FAULT', 'NODE_OPTIONS']) delete env[key];
  for (const [key, value] of Object.entries(extra)) {
    if (value === undefined) delete env[key];
    else env[key] = value;
  }
  return env;
}

function connectionEnv(c: Connection): Record<string, string> {
  return {
    DATABASE_URL: c.databaseUrl,
    REDIS_URL: c.redisUrl,
    PGBI_QUEUE: c.queueName,
    PGBI_PREFIX: c.prefix,
  };
}

/** Short intervals so a killed worker's kick comes back within seconds. */
export const FAST_WORKER_ENV: Readonly<Record<string, string>> = {
  METRICS_PORT: '0',
  LOG_LEVEL: 'warn',
  STALLED_INTERVAL_MS: '2000',
  LOCK_DURATION_MS: '2000',
  SWEEP_INTERVAL_MS: '500',
  SHUTDOWN_TIMEOUT_MS: '5000',
  WORKER_CONCURRENCY: '2',
};

export class WorkerProcess {
  readonly label: string;
  /** The environment it was started with on top of the defaults, to restart it alike. */
  readonly env: Readonly<Record<string, string | undefined>>;
  readonly child: ChildProcess;
  readonly exited: Promise<Exit>;
  exit: Exit | undefined;
  /** When it logged 'worker started' (only logged at LOG_LEVEL=info or lower). */
  readyAt: number | undefined;
  #output = '';

  constructor(connection: Connection, env: Record<string, string | undefined> = {}, label = 'worker') {
    this.label = label;
    this.env = env;
    this.child = spawn(process.execPath, ['--import', 'tsx', CLI, 'worker'], {
      cwd: ROOT,
      env: childEnv({ ...connectionEnv(connection), ...FAST_WORKER_ENV, ...env }),
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    running.add(this.child);
    const keep = (chunk: Buffer) => {
      this.#output = (this.#output + chunk.toString()).slice(-64 * 1024);
      if (this.readyAt === undefined && this.#output.includes('"worker started"')) this.readyAt = Date.now();
    };
    this.child.stdout?.on('data', keep);
    this.child.stderr?.on('data', keep);
    this.exited = new Promise((resolve) => {
      this.child.once('close', (code: number | null, signal: NodeJS.Signals | null) => {
        running.delete(this.child);
        this.exit = { code, signal };
        resolve(this.exit);
      });
    });
  }

  get pid(): number {
    return this.child.pid as number;
  }

  get alive(): boolean {
    return this.exit === undefined;
  }

  /** Everything it printed (pino logs go to stdout, crashes to stderr), last 64 KiB. */
  get output(): string {
    return this.#output;
  }

  /** `kill -9`: no cleanup, no ROLLBACK sent, no job released. */
  async kill9(): Promise<Exit> {
    if (this.alive) this.child.kill('SIGKILL');
    return this.exited;
  }

  /** SIGTERM, then waits for the exit; SIGKILLs and throws if it takes longer than `timeoutMs`. */
  async terminate(timeoutMs = 20_000): Promise<Exit> {
    if (!this.alive) return this.exited;
    this.child.kill('SIGTERM');
    let timer: NodeJS.Timeout | undefined;
    const late = new Promise<'late'>((resolve) => {
      timer = setTimeout(() => resolve('late'), timeoutMs);
    });
    const result = await Promise.race([this.exited, late]);
    clearTimeout(timer);
    if (result === 'late') {
      await this.kill9();
      throw new Error(
        `${this.label} (pid ${this.pid}) did not exit within ${timeoutMs} ms of SIGTERM\n${this.output}`,
      );
    }
    return result;
  }

  describe(): string {
    const status = this.exit ? `exited code=${this.exit.code} signal=${this.exit.signal}` : 'running';
    return `--- ${this.label} pid ${this.pid} (${status}) ---\n${this.output.slice(-4000)}`;
  }
}

/** The worker processes of one test: started, restarted, and all killed at the end. */
export class WorkerFleet {
  readonly connection: Connection;
  /** Every process ever started, dead ones included. */
  readonly all: WorkerProcess[] = [];

  constructor(connection: Connection) {
    this.connection = connection;
  }

  start(
    env: Record<string, string | undefined> = {},
    label = `worker-${this.all.length + 1}`,
  ): WorkerProcess {
    const worker = new WorkerProcess(this.connection, env, label);
    this.all.push(worker);
    return worker;
  }

  get alive(): WorkerProcess[] {
    return this.all.filter((w) => w.alive);
  }

  /**
   * Restarts, alike, every process that dies (killed or crashed) until `stop()`, which resolves
   * to the processes that died meanwhile.
   */
  supervise(intervalMs = 200): { stop: () => Promise<WorkerProcess[]> } {
    const handled = new Set(this.all.filter((w) => !w.alive));
    const died: WorkerProcess[] = [];
    let stopped = false;
    const loop = (async () => {
      while (!stopped) {
        await new Promise((r) => setTimeout(r, intervalMs));
        for (const w of this.all.filter((p) => !p.alive && !handled.has(p))) {
          handled.add(w);
          died.push(w);
          if (!stopped) this.start(w.env, w.label);
        }
      }
    })();
    return {
      stop: async () => {
        stopped = true;
        await loop;
        return died;
      },
    };
  }

  async killAll(): Promise<void> {
    await Promise.all(this.all.map((w) => w.kill9()));
  }

  diagnostics(): string {
    return this.all.map((w) => w.describe()).join('\n');
  }

  /** Lines some process printed matching `pattern` (pino JSON lines). */
  logLines(pattern: RegExp): string[] {
    return this.all.flatMap((w) => w.output.split('\n').filter((line) => pattern.test(line)));
  }
}

export interface QueueFixture {
  /** A schema only this test uses; stream names start with `<schema>.`. */
  readonly schema: string;
  readonly connection: Connection;
  readonly fleet: WorkerFleet;
  /** A session on the test database, ended afterwards. */
  readonly db: pg.Client;
}

/**
 * Runs `fn` with its own schema, queue name and key prefix. Afterwards, pass or fail: kills every
 * worker it started, prints their output if it failed, drops the schema, forgets its streams in
 * bulk_ingest, and removes the queue and every key under the prefix.
 */
export async function withQueueFixture(
  tag: string,
  fn: (f: QueueFixture) => Promise<void>,
  urls: { databaseUrl?: string; redisUrl?: string; cleanRedis?: boolean } = {},
): Promise<void> {
  const schema = uniqueName(tag);
  const connection: Connection = {
    databaseUrl: urls.databaseUrl ?? DATABASE_URL,
    redisUrl: urls.redisUrl ?? REDIS_URL,
    queueName: `q-${schema}`,
    prefix: `pgbi-${schema}`,
  };
  const fleet = new WorkerFleet(connection);
  const db = new pg.Client({ connectionString: connection.databaseUrl });
  db.on('error', () => undefined); // a PostgreSQL restart must not crash the test process
  await db.connect();
  try {
    await fn({ schema, connection, fleet, db });
  } catch (error) {
    if (fleet.all.length > 0) console.error(`[${tag}] failed; worker output:\n${fleet.diagnostics()}`);
    throw error;
  } finally {
    await fleet.killAll();
    await db.end().catch(() => undefined);
    await cleanUp(connection.databaseUrl, schema).catch((e) => console.error(`[${tag}] cleanup: ${e}`));
    if (urls.cleanRedis !== false) await cleanQueue(connection, connection.redisUrl).catch(() => undefined);
  }
}

/** Drops the schema and forgets its streams (a fresh session: the test's may be broken). */
async function cleanUp(databaseUrl: string, schema: string): Promise<void> {
  const db = new pg.Client({ connectionString: databaseUrl });
  await db.connect();
  try {
    await db.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
    await forgetStreams(db, schema);
  } finally {
    await db.end();
  }
}

async function forgetStreams(db: pg.Client, schema: string): Promise<void> {
  const exists = await db.query(`SELECT to_regclass('bulk_ingest.stream_state') IS NOT NULL AS ok`);
  if (!exists.rows[0]?.ok) return;
  await db.query('DELETE FROM bulk_ingest.stream_state WHERE stream LIKE $1', [`${schema}.%`]);
  await db.query('DELETE FROM bulk_ingest.skipped_batches WHERE stream LIKE $1', [`${schema}.%`]);
  for (const table of ['batches', 'rewinds']) {
    const found = await db.query('SELECT to_regclass($1) IS NOT NULL AS ok', [`bulk_ingest.${table}`]);
    if (found.rows[0]?.ok)
      await db.query(`DELETE FROM bulk_ingest.${table} WHERE stream LIKE $1`, [`${schema}.%`]);
  }
}

/** Committed seq of each stream, as PostgreSQL (the truth) has it. */
export async function committedSeqs(
  db: pg.ClientBase,
  streams: readonly string[],
): Promise<Map<string, number>> {
  const found = new Map(streams.map((s) => [s, 0]));
  const exists = await db.query(`SELECT to_regclass('bulk_ingest.stream_state') IS NOT NULL AS ok`);
  if (!exists.rows[0]?.ok) return found;
  const { rows } = await db.query<{ stream: string; seq: string }>(
    'SELECT stream, committed_seq AS seq FROM bulk_ingest.stream_state WHERE stream = ANY($1)',
    [streams],
  );
  for (const row of rows) found.set(row.stream, Number(row.seq));
  return found;
}

/**
 * A commit log on `schema.table`: a row trigger records, once per marker value, the time its
 * transaction wrote it. Batches of one stream carry distinct markers, so reading the log by time
 * gives the order in which batches were applied (each transaction only starts writing once the
 * previous batch of its stream has committed, so this is also commit order).
 */
export async function addCommitLog(
  db: pg.ClientBase,
  schema: string,
  table: string,
  markerColumn = 'marker',
): Promise<void> {
  const s = `"${schema}"`;
  await db.query(`
    CREATE TABLE IF NOT EXISTS ${s}.commit_log (tbl text NOT NULL, marker bigint NOT NULL, txid bigint NOT NULL,
                                               at timestamptz NOT NULL, PRIMARY KEY (tbl, marker));
    CREATE OR REPLACE FUNCTION ${s}.log_commit() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
      INSERT INTO ${s}.commit_log VALUES (TG_TABLE_NAME, (to_jsonb(NEW) ->> TG_ARGV[0])::bigint, txid_current(), clock_timestamp())
      ON CONFLICT DO NOTHING;
      RETURN NULL;
    END $$;
    CREATE TRIGGER log_commit AFTER INSERT OR UPDATE ON ${s}."${table}" FOR EACH ROW EXECUTE FUNCTION ${s}.log_commit('${markerColumn}');`);
}

/** Markers of `table` in the order their transactions wrote them, with one txid per marker. */
export async function commitOrder(
  db: pg.ClientBase,
  schema: string,
  table: string,
): Promise<{ marker: number; txid: string }[]> {
  const { rows } = await db.query<{ marker: string; txid: string }>(
    `SELECT marker, txid FROM "${schema}".commit_log WHERE tbl = $1 ORDER BY at, marker`,
    [table],
  );
  return rows.map((r) => ({ marker: Number(r.marker), txid: r.txid }));
}

/**
 * Checks a commit log against sequence order when batches may be coalesced: each transaction
 * (txid) holds a contiguous range of seqs, the transactions' ranges follow each other in commit
 * order without overlap, and together they cover 1..total (a batch whose rows were all
 * overwritten later in its own transaction leaves no marker, but lies inside its range).
 * Returns the number of transactions.
 */
export function assertCommitOrder(
  order: readonly { marker: number; txid: string }[],
  seqOfMarker: ReadonlyMap<number, number>,
  total: number,
): number {
  const ranges: { txid: string; min: number; max: number }[] = [];
  for (const { marker, txid } of order) {
    const seq = seqOfMarker.get(marker) as number;
    const last = ranges[ranges.length - 1];
    if (last?.txid === txid) {
      last.min = Math.min(last.min, seq);
      last.max = Math.max(last.max, seq);
    } else {
      assert.ok(
        !ranges.some((r) => r.txid === txid),
        `transaction ${txid} wrote before and after another one`,
      );
      ranges.push({ txid, min: seq, max: seq });
    }
  }
  let covered = 0;
  for (const r of ranges) {
    assert.ok(r.min > covered, `batches ${r.min}-${r.max} committed after batch ${covered}: out of order`);
    covered = r.max;
  }
  assert.equal(covered, total, 'not every batch was committed');
  return ranges.length;
}

/** Runs the CLI to completion (`status`, `skip`, ...). */
export async function runCli(
  args: readonly string[],
  connection: Connection,
  timeoutMs = 30_000,
): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const child = spawn(process.execPath, ['--import', 'tsx', CLI, ...args], {
    cwd: ROOT,
    env: childEnv({ ...connectionEnv(connection), LOG_LEVEL: 'warn' }),
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  running.add(child);
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (c: Buffer) => {
    stdout += c.toString();
  });
  child.stderr.on('data', (c: Buffer) => {
    stderr += c.toString();
  });
  const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
  const code = await new Promise<number | null>((resolve) =>
    child.once('close', (c: number | null) => resolve(c)),
  );
  clearTimeout(timer);
  running.delete(child);
  return { code, stdout, stderr };
}

/** Until `check` holds; on timeout throws with `what` and, if given, what `explain` says. */
export async function eventually(
  check: () => Promise<boolean>,
  timeoutMs: number,
  what: string,
  explain?: () => Promise<string> | string,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (await check()) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(
    `Timed out after ${timeoutMs} ms waiting for ${what}${explain ? `: ${await explain()}` : ''}`,
  );
}

/**
 * The test's BullMQ queues: `queue` takes foreign `batch` jobs, `kicks` the kicks (to add them by
 * hand, or count jobs); close them after.
 */
export function openQueue(c: Connection): {
  queue: Queue;
  kicks: Queue;
  redis: Redis;
  close: () => Promise<void>;
} {
  const redis = new Redis(c.redisUrl, { maxRetriesPerRequest: null });
  const names = bullQueues(c);
  const queue = new Queue(names.admissions, { connection: redis, prefix: names.prefix });
  const kicks = new Queue(names.kicks, { connection: redis, prefix: names.prefix });
  return {
    queue,
    kicks,
    redis,
    close: async () => {
      await queue.close().catch(() => undefined);
      await kicks.close().catch(() => undefined);
      redis.disconnect();
    },
  };
}

/** A batch of a plain-insert table, as sent: its marker, rows, and the seq enqueue gave it. */
export interface SentBatch {
  readonly marker: number;
  readonly rows: [marker: number, n: number, payload: string][];
  seq?: number;
}

/** A table without a key taking plain inserts (a batch applied twice shows), with a commit log. */
export async function plainTable(db: pg.ClientBase, schema: string, name: string): Promise<IngestTable> {
  const columns = [
    { name: 'marker', type: 'bigint' },
    { name: 'n', type: 'integer' },
    { name: 'payload', type: 'text' },
  ];
  const t = defineTable({ schema, name, columns });
  await ingest(db, [t], () => []);
  await addCommitLog(db, schema, name);
  return t;
}

export function plainBatch(marker: number, maxRows = 40): SentBatch {
  const rows = Array.from({ length: randomInt(1, maxRows + 1) }, (_, n) => [
    marker,
    n,
    `${marker}/${n}/${randomInt(1e9).toString(36)}`,
  ]);
  return { marker, rows: rows as SentBatch['rows'] };
}

export function enqueuePlain(producer: Producer, t: IngestTable, batch: SentBatch) {
  const rows = batch.rows.map((r) => [t, r] as const);
  return producer.enqueue({
    tables: [t],
    highWatermark: batch.marker,
    rows,
    options: { upsert: Upsert.OFF },
  });
}

/**
 * Checks a plain table against the batches acknowledged to the producer: every row exactly once
 * (count and md5 checksum of the contents), batches written in seq order (commit log). Returns
 * its row count and checksum.
 */
export async function verifyPlainStream(
  db: pg.ClientBase,
  schema: string,
  name: string,
  sent: readonly SentBatch[],
) {
  const expectedRows = sent.flatMap((b) => b.rows).sort((a, b) => a[0] - b[0] || a[1] - b[1]);
  const checksum = createHash('md5')
    .update(expectedRows.map((r) => r.join(':')).join(','))
    .digest('hex');
  const { rows } = await db.query<{ n: number; sum: string | null }>(
    `SELECT count(*)::int AS n, md5(string_agg(marker || ':' || n || ':' || payload, ',' ORDER BY marker, n)) AS sum
       FROM "${schema}"."${name}"`,
  );
  assert.equal(rows[0]?.n, expectedRows.length, `${name}: row count`);
  assert.equal(rows[0]?.sum, checksum, `${name}: content checksum`);
  const seqOf = new Map(sent.map((b) => [b.marker, b.seq as number]));
  const order = (await commitOrder(db, schema, name)).map((o) => seqOf.get(o.marker));
  const bySeq = sent.map((b) => b.seq as number).sort((a, b) => a - b);
  assert.deepEqual(order, bySeq, `${name}: batches did not commit in sequence order`);
  return { rows: expectedRows.length, checksum };
}
