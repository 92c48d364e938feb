/**
 * `npm run bench`: every method of methods.ts on the same generated rows and the same
 * PostgreSQL, each run into a fresh table (own schema, primary key), runs interleaved across
 * methods, median of BENCH_RUNS. Prints a markdown table and writes bench/out/results.json.
 *
 * Environment:
 *   DATABASE_URL    default postgres://postgres@127.0.0.1:5432/test
 *   BENCH_ROWS      rows per method (default 1,000,000; shrink for a smoke run)
 *   BENCH_RUNS      runs per method (default 3)
 *   BENCH_BATCH     rows per batch (default 100,000)
 *   BENCH_SEED      data set seed (default 1)
 *   BENCH_METHODS   comma-separated method ids to run (default all); `--only <ids>` on the
 *                   command line (`npm run bench -- --only queue-small-batches`) does the same
 *   BENCH_SMALL_BATCHES batches per shape of queue-small-batches (default 2,000)
 *   BENCH_CPU_PROF  set: Node methods run with --cpu-prof, profiles in bench/out/profiles
 *   BENCH_NODE_FLAGS extra flags for the Node methods' processes, e.g. --max-semi-space-size=4
 *   BENCH_WORKER_NODE_FLAGS extra flags for the queue methods' workers (default BENCH_NODE_FLAGS)
 *   BENCH_VERIFY    0: skip checking each method's table against the expected rows (first run)
 */
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import pg from 'pg';
import { psql, quoteIdent, withClient } from './db.ts';
import { COLUMN_NAMES, TABLE_NAME, writeCopyFile } from './generate-rows.ts';
import type { BenchMethod, MethodContext } from './method.ts';
import { METHOD_MODULES } from './methods.ts';
import { OUT as BENCH_OUT, modulePath, NODE_LOADER, REPO } from './paths.ts';
import { PgCpuSampler, taggedUrl } from './pg-cpu.ts';

const OUT = `${BENCH_OUT}/`;

const config = {
  databaseUrl: process.env.DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/test',
  rows: intEnv('BENCH_ROWS', 1_000_000),
  runs: intEnv('BENCH_RUNS', 3),
  batchSize: intEnv('BENCH_BATCH', 100_000),
  seed: intEnv('BENCH_SEED', 1),
  methods: (onlyArgument() ?? process.env.BENCH_METHODS)?.split(',').map((m) => m.trim()),
  cpuProf: Boolean(process.env.BENCH_CPU_PROF),
  nodeFlags: (process.env.BENCH_NODE_FLAGS ?? '').split(' ').filter(Boolean),
  verify: process.env.BENCH_VERIFY !== '0',
};

interface RunResult {
  ms: number;
  rows: number;
  rowsPerSec: number;
  /** CPU time of the child process while timed (user + system): Node's own cost, unlike wall time. */
  cpuMs?: number;
  /** CPU time of the run's PostgreSQL backends (pg-cpu.ts). */
  pgCpuMs?: number;
  maxRssMb?: number;
  rssBeforeMb?: number;
  /** Extra figures a method reported (RunReport.metrics), e.g. latency percentiles. */
  metrics?: Record<string, number>;
}

interface MethodResult {
  id: string;
  label: string;
  rows: number;
  extrapolated: boolean;
  runs: RunResult[];
  medianRowsPerSec: number;
  peakRssMb?: number;
  /** Median CPU time of the Node process per million rows (user + system). */
  nodeCpuSecPerMillion?: number;
  /** Median CPU time of its PostgreSQL backends per million rows. */
  pgCpuSecPerMillion?: number;
  vsPsqlCopy?: number;
  vsReference?: number;
  reference?: string;
  verified?: boolean;
  /** Medians of the runs' metrics. */
  metrics?: Record<string, number>;
}

/** `--only a,b` or `--only=a,b`: the methods to run, as BENCH_METHODS. */
function onlyArgument(): string | undefined {
  const args = process.argv.slice(2);
  for (const [i, arg] of args.entries()) {
    if (arg.startsWith('--only=')) return arg.slice('--only='.length);
    if (arg === '--only') {
      const value = args[i + 1];
      if (!value) throw new Error('--only needs comma-separated method ids');
      return value;
    }
    throw new Error(`Unknown argument ${arg} (the only one is --only <method ids>)`);
  }
  return undefined;
}

function intEnv(name: string, fallback: number): number {
  const raw = process.env[name];
  if (raw === undefined || raw === '') return fallback;
  const value = Number(raw.replaceAll('_', ''));
  if (!Number.isInteger(value) || value < 1)
    throw new Error(`${name} must be a positive integer, got ${raw}`);
  return value;
}

function log(message: string): void {
  process.stderr.write(`${message}\n`);
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2
    ? (sorted[mid] as number)
    : ((sorted[mid - 1] as number) + (sorted[mid] as number)) / 2;
}

async function machine() {
  const version = await withClient(config.databaseUrl, (c) =>
    c.query<{ v: string }>("SELECT current_setting('server_version') AS v"),
  );
  const pgVersion = version.rows[0]?.v ?? '?';
  return {
    cpu: os.cpus()[0]?.model.trim() ?? '?',
    cores: os.availableParallelism(),
    ramGiB: Math.round((os.totalmem() / 2 ** 30) * 10) / 10,
    postgres: pgVersion,
    node: process.version,
    platform: `${os.platform()} ${os.release()}`,
  };
}

/** count and sum(hashtext(row)) of the table's rows (those with id <= `upTo`): equal sums, same rows. */
async function checksum(schema: string, upTo?: number): Promise<string> {
  return withClient(config.databaseUrl, async (c) => {
    const r = await c.query<{ n: number; h: string }>(
      `SELECT count(*)::int AS n, coalesce(sum(hashtext(t::text)), 0)::text AS h FROM ${quoteIdent(schema)}.${quoteIdent(TABLE_NAME)} t WHERE $1::bigint IS NULL OR id <= $1`,
      [upTo ?? null],
    );
    return `${r.rows[0]?.n}:${r.rows[0]?.h}`;
  });
}

async function dropSchema(schema: string): Promise<void> {
  await withClient(config.databaseUrl, (c) => c.query(`DROP SCHEMA IF EXISTS ${quoteIdent(schema)} CASCADE`));
}

function runNode(methodModule: string, ctx: MethodContext, id: string, run: number): Promise<RunResult> {
  const execArgv = [...NODE_LOADER, ...config.nodeFlags];
  if (config.cpuProf)
    execArgv.push('--cpu-prof', `--cpu-prof-dir=${OUT}profiles`, `--cpu-prof-name=${id}-${run}.cpuprofile`);
  return new Promise((resolve, reject) => {
    const child = spawn(
      process.execPath,
      [...execArgv, modulePath('bench/child.ts'), methodModule, JSON.stringify(ctx)],
      {
        stdio: ['ignore', 'pipe', 'inherit'],
      },
    );
    let stdout = '';
    child.stdout.on('data', (d) => {
      stdout += d;
    });
    child.on('error', reject);
    child.on('close', (code) => {
      const line = stdout.split('\n').find((l) => l.startsWith('BENCH_RESULT '));
      if (code !== 0 || !line) return reject(new Error(`${id} exited with ${code}\n${stdout}`));
      const r = JSON.parse(line.slice('BENCH_RESULT '.length)) as {
        ms: number;
        rows: number;
        cpuMs: number;
        maxRssKb: number;
        rssBeforeKb: number;
        metrics?: Record<string, number>;
      };
      resolve({
        ms: r.ms,
        rows: r.rows,
        rowsPerSec: r.rows / (r.ms / 1000),
        cpuMs: r.cpuMs,
        maxRssMb: r.maxRssKb / 1024,
        rssBeforeMb: r.rssBeforeKb / 1024,
        ...(r.metrics ? { metrics: r.metrics } : {}),
      });
    });
  });
}

function runCommand([file, args]: [string, string[]], rows: number): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    const start = performance.now();
    const child = spawn(file, args, { stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (d) => {
      stderr += d;
    });
    child.on('error', reject);
    child.on('exit', (code) => {
      const ms = performance.now() - start;
      if (code !== 0) return reject(new Error(`${file} exited with ${code}: ${stderr}`));
      resolve({ ms, rows, rowsPerSec: rows / (ms / 1000) });
    });
  });
}

/** The COPY file of `seed`, reused when an earlier run wrote it with the same rows and generator. */
async function generatedCopyFile(path: string, seed: number): Promise<{ bytes: number; reused: boolean }> {
  const generator = createHash('sha256')
    .update(readFileSync(`${REPO}bench/generate-rows.ts`))
    .digest('hex');
  const stamp = JSON.stringify({ seed, rows: config.rows, generator });
  const stampPath = `${path}.stamp`;
  if (existsSync(path) && existsSync(stampPath) && readFileSync(stampPath, 'utf8') === stamp) {
    return { bytes: statSync(path).size, reused: true };
  }
  rmSync(stampPath, { force: true });
  const bytes = await writeCopyFile(path, seed, config.rows);
  writeFileSync(stampPath, stamp);
  return { bytes, reused: false };
}

const fmtInt = (n: number) => Math.round(n).toLocaleString('en-US');
const fmtRatio = (n: number | undefined) => (n === undefined ? '' : `${n.toFixed(2)}×`);
const fmtMb = (n: number | undefined) => (n === undefined ? '—' : n.toFixed(0));

function printTable(results: MethodResult[]): string {
  const header = [
    'method',
    'rows',
    'rows/s',
    '× psql \\copy',
    '× upsert ref',
    'peak RSS MB',
    'Node CPU s/M',
    'PG CPU s/M',
  ];
  const body = results.map((r) => [
    r.label,
    `${fmtInt(r.rows)}${r.extrapolated ? ' *' : ''}`,
    fmtInt(r.medianRowsPerSec),
    fmtRatio(r.vsPsqlCopy),
    fmtRatio(r.vsReference),
    fmtMb(r.peakRssMb),
    r.nodeCpuSecPerMillion === undefined ? '—' : r.nodeCpuSecPerMillion.toFixed(2),
    r.pgCpuSecPerMillion === undefined ? '—' : r.pgCpuSecPerMillion.toFixed(2),
  ]);
  const widths = header.map((h, i) => Math.max(h.length, ...body.map((row) => (row[i] as string).length)));
  const line = (cells: string[]) =>
    `| ${cells.map((c, i) => (i === 0 ? c.padEnd(widths[i] as number) : c.padStart(widths[i] as number))).join(' | ')} |`;
  const rule = `|${widths.map((w, i) => (i === 0 ? `-${'-'.repeat(w)}-` : `${'-'.repeat(w + 1)}:`)).join('|')}|`;
  return [line(header), rule, ...body.map(line)].join('\n');
}

/** Seconds per million rows the slower side needs; the sides overlap, each on its own core. */
function cpuBound(r: MethodResult): number {
  if (r.pgCpuSecPerMillion === undefined) return Number.NaN;
  return Math.max(r.pgCpuSecPerMillion, r.nodeCpuSecPerMillion ?? 0);
}

function medianRssAtStart(results: MethodResult[]): number | undefined {
  const values = results
    .flatMap((r) => r.runs.map((run) => run.rssBeforeMb))
    .filter((v): v is number => v !== undefined);
  return values.length > 0 ? median(values) : undefined;
}

async function main(): Promise<void> {
  const benchStart = performance.now();
  const loadAtStart = os.loadavg()[0] ?? 0;
  mkdirSync(OUT, { recursive: true });
  const loaded: { module: string; method: BenchMethod }[] = [];
  for (const file of METHOD_MODULES) {
    const module = modulePath(`bench/${file}`);
    const method = (await import(module)).default as BenchMethod;
    if (!config.methods || config.methods.includes(method.id)) loaded.push({ module, method });
  }
  if (loaded.length === 0) throw new Error(`No method matches ${config.methods?.join(',')}`);
  // Methods with rows of their own need neither the copy files nor the expected rows.
  const usesCopyFiles = loaded.filter(({ method }) => !method.ownRows);

  const info = await machine();
  const machineLine = `Machine: ${info.cpu}, ${info.cores} cores, ${info.ramGiB} GiB RAM, PostgreSQL ${info.postgres}, Node ${info.node} (${info.platform})`;
  log(machineLine);

  const copyFile = `${OUT}rows.copy`;
  const prefillFile = `${OUT}rows-prefill.copy`;
  let t = performance.now();
  if (usesCopyFiles.length > 0) {
    const { bytes, reused } = await generatedCopyFile(copyFile, config.seed);
    await generatedCopyFile(prefillFile, config.seed + 1);
    log(
      reused
        ? `Reusing ${fmtInt(config.rows)} rows as COPY text (${(bytes / 2 ** 20).toFixed(0)} MiB), same seed and generator`
        : `Generated ${fmtInt(config.rows)} rows as COPY text (${(bytes / 2 ** 20).toFixed(0)} MiB) in ${((performance.now() - t) / 1000).toFixed(1)} s (2 files)`,
    );
  }

  const rowsOf = (m: BenchMethod) => Math.min(config.rows, m.maxRows ?? Number.POSITIVE_INFINITY);
  // The expected rows: the table of the method that loads the copy file itself (psql \copy), if
  // it runs first; otherwise a load of the file made for the purpose.
  const expected = new Map<number, string>();
  const expectedFrom = async (schema: string) => {
    for (const { method } of usesCopyFiles) {
      const n = rowsOf(method);
      if (!expected.has(n)) expected.set(n, await checksum(schema, n));
    }
  };
  if (config.verify && usesCopyFiles.length > 0 && !loaded[0]?.method.loadsCopyFile) {
    t = performance.now();
    const schema = 'bench_expected';
    await dropSchema(schema);
    await withClient(config.databaseUrl, (c) =>
      c.query(
        `CREATE SCHEMA ${schema}; CREATE TABLE ${schema}.${TABLE_NAME} (id bigint PRIMARY KEY, at timestamp, name varchar(64), amount numeric(12,2), payload jsonb)`,
      ),
    );
    await psql(config.databaseUrl, [
      '-c',
      `\\copy ${schema}.${TABLE_NAME} (${COLUMN_NAMES.join(', ')}) FROM '${copyFile}'`,
    ]);
    await expectedFrom(schema);
    await dropSchema(schema);
    log(`Expected rows loaded and summed in ${((performance.now() - t) / 1000).toFixed(1)} s`);
  }

  const samplerClient = new pg.Client({ connectionString: config.databaseUrl });
  await samplerClient.connect();
  const runs = new Map<string, RunResult[]>(loaded.map(({ method }) => [method.id, []]));
  const verified = new Map<string, boolean>();
  for (let run = 1; run <= config.runs; run++) {
    for (const { module, method } of loaded) {
      const schema = `bench_${method.id.replaceAll('-', '_')}`;
      const ctx: MethodContext = {
        databaseUrl: config.databaseUrl,
        schema,
        rows: rowsOf(method),
        batchSize: config.batchSize,
        seed: config.seed,
        copyFile,
        prefillFile,
      };
      await dropSchema(schema);
      await withClient(config.databaseUrl, (c) => c.query(`CREATE SCHEMA ${quoteIdent(schema)}`));
      await method.setup(ctx);
      await withClient(config.databaseUrl, (c) => c.query('CHECKPOINT'));
      const timed = { ...ctx, databaseUrl: taggedUrl(ctx.databaseUrl) };
      const sampler = new PgCpuSampler(samplerClient);
      sampler.start();
      const result =
        method.kind === 'node'
          ? await runNode(module, timed, method.id, run)
          : await runCommand(method.command(timed), ctx.rows);
      const pgCpuMs = await sampler.stop();
      if (pgCpuMs !== undefined) result.pgCpuMs = pgCpuMs;
      runs.get(method.id)?.push(result);
      let check = '';
      if (config.verify && run === 1 && expected.size === 0 && method.loadsCopyFile) {
        await expectedFrom(schema);
        check = ', its rows are the expected ones';
      } else if (config.verify && run === 1 && !method.ownRows) {
        const ok = (await checksum(schema)) === expected.get(ctx.rows);
        verified.set(method.id, ok);
        check = ok ? ', rows verified' : ', ROWS DIFFER FROM THE EXPECTED ONES';
      }
      await dropSchema(schema);
      log(
        `run ${run}/${config.runs} ${method.id}: ${fmtInt(result.rows)} rows in ${(result.ms / 1000).toFixed(2)} s = ${fmtInt(result.rowsPerSec)} rows/s` +
          `${result.cpuMs === undefined ? '' : `, Node CPU ${(result.cpuMs / 1000).toFixed(2)} s`}` +
          `${result.pgCpuMs === undefined ? '' : `, PostgreSQL CPU ${(result.pgCpuMs / 1000).toFixed(2)} s`}` +
          `${result.maxRssMb === undefined ? '' : `, peak RSS ${fmtMb(result.maxRssMb)} MB`}${check}`,
      );
    }
  }

  await samplerClient.end();

  const results: MethodResult[] = loaded.map(({ method }) => {
    const list = runs.get(method.id) ?? [];
    const rss = list.map((r) => r.maxRssMb).filter((v): v is number => v !== undefined);
    const perMillion = (ms: number | undefined, rows: number) =>
      ms === undefined ? [] : [(ms / 1000) * (1e6 / rows)];
    const cpu = list.flatMap((r) => perMillion(r.cpuMs, r.rows));
    const pgCpu = list.flatMap((r) => perMillion(r.pgCpuMs, r.rows));
    const metricNames = [...new Set(list.flatMap((r) => Object.keys(r.metrics ?? {})))];
    const metrics = Object.fromEntries(
      metricNames.map((k) => [
        k,
        median(list.flatMap((r) => (r.metrics?.[k] === undefined ? [] : [r.metrics[k]]))),
      ]),
    );
    return {
      id: method.id,
      label: method.label,
      rows: rowsOf(method),
      extrapolated: rowsOf(method) < config.rows,
      runs: list,
      medianRowsPerSec: median(list.map((r) => r.rowsPerSec)),
      ...(rss.length > 0 ? { peakRssMb: Math.max(...rss) } : {}),
      ...(cpu.length > 0 ? { nodeCpuSecPerMillion: median(cpu) } : {}),
      ...(pgCpu.length > 0 ? { pgCpuSecPerMillion: median(pgCpu) } : {}),
      ...(method.reference ? { reference: method.reference } : {}),
      ...(verified.has(method.id) ? { verified: verified.get(method.id) } : {}),
      ...(metricNames.length > 0 ? { metrics } : {}),
    };
  });
  const rate = (id: string) => results.find((r) => r.id === id)?.medianRowsPerSec;
  for (const r of results) {
    const psqlRate = rate('psql-copy');
    if (psqlRate) r.vsPsqlCopy = r.medianRowsPerSec / psqlRate;
    const refRate = r.reference ? rate(r.reference) : undefined;
    if (refRate) r.vsReference = r.medianRowsPerSec / refRate;
  }

  const targetLines: string[] = [];
  for (const { method } of loaded) {
    const r = results.find((x) => x.id === method.id) as MethodResult;
    for (const target of method.targets ?? []) {
      if ('of' in target) {
        const of = rate(target.of);
        if (!of) continue;
        const ratio = r.medianRowsPerSec / of;
        const ofResult = results.find((x) => x.id === target.of);
        const cpuRatio = ofResult ? cpuBound(ofResult) / cpuBound(r) : Number.NaN;
        targetLines.push(
          `${ratio >= target.atLeast ? 'met   ' : 'MISSED'} ${method.id}: ${ratio.toFixed(2)} × ${target.of} (target ≥ ${target.atLeast})` +
            (Number.isNaN(cpuRatio) ? '' : `; on CPU time ${cpuRatio.toFixed(2)} ×`),
        );
      } else if ('metric' in target) {
        const value = r.metrics?.[target.metric];
        if (value === undefined) continue;
        const [met, goal] =
          'below' in target
            ? [value < target.below, `< ${target.below}`]
            : [value >= target.atLeast, `≥ ${fmtInt(target.atLeast)}`];
        targetLines.push(
          `${met ? 'met   ' : 'MISSED'} ${method.id}: ${target.label} ${value.toFixed(1)} ${target.unit} (target ${goal} ${target.unit})`,
        );
      } else if (r.peakRssMb !== undefined) {
        const ok = r.peakRssMb < target.maxRssMb;
        targetLines.push(
          `${ok ? 'met   ' : 'MISSED'} ${method.id}: peak RSS ${r.peakRssMb.toFixed(1)} MB (target < ${target.maxRssMb} MB)`,
        );
      }
    }
  }

  const metricLines = results
    .filter((r) => r.metrics)
    .map(
      (r) =>
        `${r.label}: ${Object.entries(r.metrics ?? {})
          .map(([k, v]) => `${k} ${Number.isInteger(v) ? v : v.toFixed(1)}`)
          .join(', ')}`,
    );
  const table = printTable(results) + (metricLines.length > 0 ? `\n\n${metricLines.join('\n')}` : '');
  const notes = [
    `rows/s: median of ${config.runs} run(s); ${fmtInt(config.rows)} rows in batches of ${fmtInt(config.batchSize)}, each method into a fresh table with a primary key.`,
    ...results
      .filter((r) => r.extrapolated)
      .map(
        (r) =>
          `* ${r.label}: run on ${fmtInt(r.rows)} rows only; its rows/s is extrapolated to ${fmtInt(config.rows)} rows.`,
      ),
    'Upserts: the table holds every key beforehand (other values), so every row conflicts.',
    `Peak RSS: the child process running the method, whole run; it holds about ${fmtMb(medianRssAtStart(results))} MB before its first row (Node, pg, zod; ${NODE_LOADER.length === 0 ? 'compiled JavaScript, no TypeScript loader' : 'run from the TypeScript sources, the tsx loader included'}). Queue methods: the largest worker process (VmHWM), not the producer.`,
    ...(results.some((r) => r.id.startsWith('queue-'))
      ? [
          'Queue methods: timed from the first enqueue until the last batch is committed (workers started beforehand); Node CPU is the producer plus the workers.',
        ]
      : []),
    'Node CPU, PG CPU: user + system seconds per million rows of the Node process and of its PostgreSQL backends, medians.',
    '"On CPU time": the ratio of max(Node CPU, PG CPU) per row, the two sides working at once on their own cores: what an otherwise idle machine would show.',
    `Load average (1 min) at start ${loadAtStart.toFixed(1)}, at end ${os.loadavg()[0]?.toFixed(1)}: other processes on the machine slow most the methods that need both cores.`,
    `Bench time: ${((performance.now() - benchStart) / 60_000).toFixed(1)} min.`,
  ];
  process.stdout.write(`\n${table}\n\n${notes.join('\n')}\n\n${targetLines.join('\n')}\n\n${machineLine}\n`);
  writeFileSync(
    `${OUT}results.json`,
    `${JSON.stringify({ date: new Date().toISOString(), machine: info, loadAverage: { start: loadAtStart, end: os.loadavg()[0] }, config: { ...config, databaseUrl: undefined }, results }, null, 2)}\n`,
  );
  log(`\nWrote ${OUT}results.json`);
}

await main();
