/**
 * The package as a user meets it: `npm pack`, the tarball installed into a new project
 * outside the repository (so nothing can reach `src/`), and there: every pinned name imported
 * from 'pg-bulk-ingest', the README's examples run exactly as the README shows them (read from
 * README.md at run time), the CLI's help, and `pg-bulk-ingest worker` applying a batch.
 *
 * The README examples use the default connection strings unless DATABASE_URL and REDIS_URL say
 * otherwise, and fixed names (`my_schema.my_table`, the default queue and key prefix): they run
 * against a database and a redis-server of this test's own, so nothing shared is touched.
 */
import assert from 'node:assert/strict';
import { execFile, spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { promisify } from 'node:util';
import pg from 'pg';
import { StreamAdmin } from '../../src/index.ts';
import { ChildOutput } from '../helpers/child-output.ts';
import { exampleBlock, REPO_ROOT } from '../helpers/doc-blocks.ts';
import { uniqueName } from '../helpers/pg.ts';
import { PrivateRedis } from '../helpers/private-redis.ts';
import { waitUntil } from '../helpers/wait.ts';

const run = promisify(execFile);

/** Every value export the product specification pins (its entry points, library and queue), with the constants' values. */
const PINNED_VALUES = [
  'ingest',
  'defineTable',
  'HighWatermark',
  'Visibility',
  'Upsert',
  'Delete',
  'BadRows',
  'Producer',
  'Worker',
  'StreamAdmin',
  'PgBulkIngestError',
  'TableDefinitionError',
  'RowError',
  'BatchError',
  'InvalidBatchError',
  'batchJobSchema',
  'BATCH_FORMAT_VERSION',
  'DEFAULT_QUEUE_NAME',
  'DEFAULT_PREFIX',
] as const;

/** Types a user writes in their own code; checked by compiling a file that imports them. */
const PUBLIC_TYPES = [
  'ProducerOptions',
  'ProducerIngestOptions',
  'EnqueueInput',
  'EnqueueResult',
  'WorkerOptions',
  'WorkerEvents',
  'AdminOptions',
  'SkipOptions',
  'StreamStatus',
  'IngestOptions',
  'IngestTable',
  'TableDefinitionInput',
  'Batches',
  'Json',
  'ErrorCode',
  'BatchJob',
  'BatchJobInput',
] as const;

const BASE_URL = 'postgres://postgres@127.0.0.1:5432';
const TSX = import.meta.resolve('tsx');
const TSC = join(REPO_ROOT, 'node_modules', 'typescript', 'bin', 'tsc');

describe('the packed package installed in a project outside the repository', () => {
  const dir = mkdtempSync(join(tmpdir(), 'pgbi-user-'));
  const project = join(dir, 'project');
  const database = uniqueName('pgbi_pkg');
  const databaseUrl = `${BASE_URL}/${database}`;
  const redis = new PrivateRedis({ persistence: 'none' });
  /** The environment of the user's shell: this test's own database and Redis. */
  let env: NodeJS.ProcessEnv = {};

  before(async () => {
    const packed = join(dir, 'packed');
    mkdirSync(packed);
    mkdirSync(project);
    await run('npm', ['pack', '--pack-destination', packed], { cwd: REPO_ROOT });
    const tarball = readdirSync(packed).find((name) => name.endsWith('.tgz'));
    assert.ok(tarball, 'npm pack wrote no tarball');
    writeFileSync(
      join(project, 'package.json'),
      '{ "name": "user-project", "private": true, "type": "module" }\n',
    );
    await run('npm', ['install', '--prefer-offline', '--no-audit', '--no-fund', join(packed, tarball)], {
      cwd: project,
    });
    await adminQuery(`CREATE DATABASE ${database}`);
    await redis.start();
    const { NODE_OPTIONS: _, ...rest } = process.env;
    env = { ...rest, DATABASE_URL: databaseUrl, REDIS_URL: redis.url };
  });

  after(async () => {
    await redis.destroy();
    await adminQuery(`DROP DATABASE IF EXISTS ${database} WITH (FORCE)`);
    rmSync(dir, { recursive: true, force: true });
  });

  /** Runs a file of the user's project with node (through tsx for .ts, as a user would run TypeScript). */
  function runInProject(file: string, code: string) {
    writeFileSync(join(project, file), code);
    const loader = file.endsWith('.ts') ? ['--import', TSX] : [];
    return run(process.execPath, [...loader, file], { cwd: project, env, timeout: 90_000 });
  }

  it('exports every pinned name, with the pinned constant values', async () => {
    const { stdout } = await runInProject(
      'exports.mjs',
      `import * as api from 'pg-bulk-ingest';
const names = ${JSON.stringify(PINNED_VALUES)};
console.log(JSON.stringify({
  missing: names.filter((name) => api[name] === undefined),
  constants: { HighWatermark: api.HighWatermark, Visibility: api.Visibility, Upsert: api.Upsert, Delete: api.Delete, BadRows: api.BadRows },
}));
`,
    );
    const { missing, constants } = JSON.parse(stdout);
    assert.deepEqual(missing, []);
    assert.deepEqual(constants, {
      HighWatermark: { LATEST: '__LATEST__', EARLIEST: '__EARLIEST__' },
      Visibility: { AFTER_EACH_BATCH: '__AFTER_EACH_BATCH__' },
      Upsert: { OFF: '__OFF__', IF_PRIMARY_KEY: '__IF_PRIMARY_KEY__' },
      Delete: { OFF: '__OFF__', BEFORE_FIRST_BATCH: '__BEFORE_FIRST_BATCH__' },
      BadRows: { FAIL: '__FAIL__', QUARANTINE: '__QUARANTINE__' },
    });
  });

  it('has type declarations for the public types, which a strict TypeScript project compiles against', async () => {
    writeFileSync(
      join(project, 'tsconfig.json'),
      JSON.stringify({
        compilerOptions: {
          strict: true,
          module: 'NodeNext',
          moduleResolution: 'NodeNext',
          target: 'ES2022',
          noEmit: true,
          skipLibCheck: true,
          types: [],
        },
        files: ['types.ts'],
      }),
    );
    writeFileSync(
      join(project, 'types.ts'),
      `import type { ${PUBLIC_TYPES.join(', ')} } from 'pg-bulk-ingest';\n` +
        `export type All = [${PUBLIC_TYPES.join(', ')}];\n`,
    );
    await run(process.execPath, [TSC, '-p', 'tsconfig.json'], { cwd: project });
  });

  it("runs the README's library example as written", async () => {
    await runInProject('library-example.ts', exampleBlock('README.md', 'readme-library').code);
    assert.deepEqual(await myTableRows(), [
      [3, 'a'],
      [4, 'b'],
    ]);
  });

  it("runs the README's queue example as written (after the library example, whose myTable and batches it uses)", async () => {
    const library = exampleBlock('README.md', 'readme-library').code;
    const queue = exampleBlock('README.md', 'readme-queue').code;
    await runInProject('queue-example.ts', `${library}\n${queue}`);
    // producer.ingest enqueued the batch of 2015-01-01 (the stream had none), enqueue the one of 2015-01-02.
    const admin = new StreamAdmin({ databaseUrl, redis: redis.url });
    try {
      const [status] = await admin.status('my_schema.my_table');
      assert.equal(status?.enqueuedSeq, 2);
    } finally {
      await admin.close();
    }
  });

  it('answers --help for the CLI and for each of its commands', async () => {
    const { stdout } = await run('npx', ['pg-bulk-ingest', '--help'], { cwd: project, env });
    const commands = [...(stdout.split('Commands:')[1] ?? '').matchAll(/^ {2}(\w+)/gm)]
      .map((m) => m[1] as string)
      .filter((name) => name !== 'help');
    for (const pinned of ['worker', 'enqueue', 'status', 'skip', 'retry', 'gateway', 'demo'])
      assert.ok(commands.includes(pinned), `--help lists no ${pinned} command:\n${stdout}`);
    await Promise.all(
      commands.map(async (command) => {
        // The bin `npx pg-bulk-ingest` just ran, without starting npm once per command.
        const help = await run(join(project, 'node_modules', '.bin', 'pg-bulk-ingest'), [command, '--help'], {
          cwd: project,
          env,
        });
        assert.match(help.stdout, new RegExp(`^Usage: pg-bulk-ingest ${command}`, 'm'));
      }),
    );
  });

  it('starts `pg-bulk-ingest worker`, which applies a batch the installed Producer enqueued and exits 0 on SIGTERM', async () => {
    const names = { queueName: uniqueName('q'), prefix: uniqueName('pgbi') };
    const worker = spawn(join(project, 'node_modules', '.bin', 'pg-bulk-ingest'), ['worker'], {
      cwd: project,
      env: {
        ...env,
        PGBI_QUEUE: names.queueName,
        PGBI_PREFIX: names.prefix,
        METRICS_PORT: '0',
        LOG_LEVEL: 'info',
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const output = new ChildOutput(worker);
    const exited = new Promise<number | null>((resolve) => worker.once('exit', (code) => resolve(code)));
    try {
      await output.waitFor(/worker started/);
      await runInProject(
        'enqueue.mjs',
        `import { defineTable, Producer } from 'pg-bulk-ingest';
const table = defineTable({ schema: 'installed', name: 'events', columns: [{ name: 'id', type: 'integer', primaryKey: true }, { name: 'what', type: 'text' }] });
const producer = new Producer({ redis: process.env.REDIS_URL, queueName: ${JSON.stringify(names.queueName)}, prefix: ${JSON.stringify(names.prefix)} });
await producer.enqueue({ tables: [table], highWatermark: 1, rows: [[table, [1, 'applied by the installed worker']]] });
await producer.close();
`,
      );
      await waitUntil(
        'the batch to be committed',
        async () =>
          (await query("SELECT to_regclass('installed.events') IS NOT NULL AS ok"))[0]?.ok === true &&
          (await query('SELECT count(*)::int AS n FROM installed.events'))[0]?.n === 1,
        { timeoutMs: 60_000 },
      );
      worker.kill('SIGTERM');
      assert.equal(await exited, 0, output.text);
    } finally {
      worker.kill('SIGKILL');
    }
  });

  async function myTableRows(): Promise<unknown[][]> {
    return (await query('SELECT id, value FROM my_schema.my_table ORDER BY id')).map((r) => [r.id, r.value]);
  }

  // biome-ignore lint/suspicious/noExplicitAny: rows of ad-hoc queries
  async function query(sql: string): Promise<any[]> {
    const client = new pg.Client({ connectionString: databaseUrl });
    await client.connect();
    try {
      return (await client.query(sql)).rows;
    } finally {
      await client.end();
    }
  }
});

async function adminQuery(sql: string): Promise<void> {
  const client = new pg.Client({ connectionString: `${BASE_URL}/postgres` });
  await client.connect();
  try {
    await client.query(sql);
  } finally {
    await client.end();
  }
}
