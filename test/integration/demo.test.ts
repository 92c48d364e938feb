/**
 * `pg-bulk-ingest demo` as a user runs it: two worker processes, the synthetic feed for a few
 * seconds, a summary whose counts are the database's, and no process left behind, also on Ctrl-C.
 * Each run has its own schema, queue and key prefix (the demo passes them on to its workers).
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { after, describe, it } from 'node:test';
import { startCli } from '../helpers/cli.ts';
import { DATABASE_URL, dropSchema, uniqueName, withClient } from '../helpers/pg.ts';
import { cleanQueue, REDIS_URL, uniqueQueue } from '../helpers/queue.ts';
import { forgetStreams } from '../helpers/stream-state.ts';
import { waitUntil } from '../helpers/wait.ts';

function demo(
  { schema, queueName, prefix }: { schema: string; queueName: string; prefix: string },
  args: string[],
) {
  return startCli([
    'demo',
    ...['--schema', schema, '--queue', queueName, '--prefix', prefix, '--metrics-port', '0'],
    ...['--database-url', DATABASE_URL, '--redis-url', REDIS_URL, ...args],
  ]);
}

function workerPids(stdout: string): number[] {
  const pids = /Started \d+ workers? \(pids ([\d, ]+)\)/.exec(stdout)?.[1] ?? '';
  return pids ? pids.split(', ').map(Number) : [];
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

describe('demo command', () => {
  const runs: { schema: string; queueName: string; prefix: string }[] = [];
  const unique = () => {
    const schema = uniqueName('demo');
    const run = { schema, ...uniqueQueue() };
    runs.push(run);
    return run;
  };

  after(async () => {
    for (const run of runs) {
      await cleanQueue(run);
      await dropSchema(run.schema);
      await forgetStreams(run.schema);
    }
  });

  it('runs for --duration seconds, commits everything it reports, prints a summary, leaves no process', async () => {
    const names = unique();
    const { schema } = names;
    const { stdout, stderr, code } = await demo(names, ['--duration', '5', '--orders-per-batch', '20']).done;
    assert.equal(code, 0, `${stdout}\n${stderr}`);
    assert.match(stdout, /Demo summary: \d+s, schema demo_\w+\n/);
    assert.doesNotMatch(stdout, /NOT caught up/);
    const reported = new Map<string, number>();
    for (const table of ['customers', 'orders', 'order_events']) {
      const line = new RegExp(
        `^  ${schema}\\.${table} +([\\d,]+) +([\\d,]+) +([\\d,]+) +([\\d,]+)$`,
        'm',
      ).exec(stdout);
      assert.ok(line, `a summary line for ${table}`);
      const [, , inserted, , inTable] = line.map((n) => Number(n.replaceAll(',', '')));
      assert.ok((inserted as number) > 0);
      assert.equal(inTable, inserted, `${table}: the rows in the table are the new rows the producer sent`);
      reported.set(table, inserted as number);
    }
    const counts = await withClient(async (c) => {
      const out = new Map<string, number>();
      for (const table of reported.keys())
        out.set(table, Number((await c.query(`SELECT count(*) FROM "${schema}"."${table}"`)).rows[0].count));
      return out;
    });
    assert.deepEqual(counts, reported);
    assert.match(
      stdout,
      new RegExp(`stream ${schema}\\.orders: (\\d+) batches enqueued, committed seq \\1, lag 0`),
    );
    const logs = /Worker logs: (.+)$/m.exec(stdout)?.[1]?.split(', ') ?? [];
    assert.equal(logs.length, 2);
    for (const log of logs)
      assert.match(
        readFileSync(log, 'utf8'),
        new RegExp(`"queue":"${names.queueName}"`),
        "workers on the demo's queue",
      );
    const pids = workerPids(stdout);
    assert.equal(pids.length, 2);
    assert.deepEqual(pids.filter(alive), [], 'the workers have exited');
  });

  it('on SIGINT stops the producer, stops the worker and waits for it, and exits 130', async () => {
    const run = demo(unique(), ['--duration', '60', '--workers', '1']);
    let pids: number[] = [];
    let stdout = '';
    run.child.stdout?.on('data', (d) => {
      stdout += d;
      pids = workerPids(stdout);
    });
    try {
      await waitUntil('the worker to start', async () => pids.length === 1, { timeoutMs: 60_000 });
    } catch (error) {
      // Two SIGINTs: the demo kills its worker at once and exits, so nothing runs on after the test.
      run.child.kill('SIGINT');
      setTimeout(() => run.child.kill('SIGINT'), 200);
      await run.done;
      throw error;
    }
    await new Promise((resolve) => setTimeout(resolve, 1000));
    run.child.kill('SIGINT');
    const result = await run.done;
    assert.equal(result.code, 130, result.stderr);
    assert.match(result.stderr, /SIGINT: stopping the producer and the workers/);
    assert.match(result.stdout, /Demo summary/);
    assert.deepEqual(pids.filter(alive), [], 'no worker outlives the demo');
  });
});
