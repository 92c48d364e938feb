/**
 * `pg-bulk-ingest enqueue`, run as a process against real Redis, with an in-process Worker
 * committing into real PostgreSQL; and the CSV reader's rules on their own.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { csvRecords } from '../../src/ops/csv-records.ts';
import { ProgressLine } from '../../src/ops/progress.ts';
import { runCli } from '../helpers/cli.ts';
import { dropSchema, uniqueName, withClient } from '../helpers/pg.ts';
import { inProcessQueue, REDIS_URL } from '../helpers/queue.ts';
import { waitUntil } from '../helpers/wait.ts';

/** `pg-bulk-ingest <args>` on the test's Redis, `input` on its stdin. */
const run = (args: string[], input?: string) => runCli(args, { env: { REDIS_URL }, input });

describe('enqueue command', { concurrency: true }, () => {
  const schema = uniqueName('enqueue_cli');
  const queue = inProcessQueue();
  const names = queue.names;
  const queueFlags = ['--queue', names.queueName, '--prefix', names.prefix];
  const dir = mkdtempSync(join(tmpdir(), 'pgbi-enqueue-'));

  after(async () => {
    await dropSchema(schema);
    rmSync(dir, { recursive: true, force: true });
  });

  const committedAll = (stream: string) =>
    waitUntil(
      `${stream} committed`,
      async () => {
        const info = await queue.producer.streamInfo(stream);
        return info.enqueuedSeq > 0 && info.committedSeq === info.enqueuedSeq;
      },
      { timeoutMs: 20_000 },
    );
  const select = (sql: string) => withClient(async (c) => (await c.query(sql)).rows);

  it('enqueues a CSV file in batches: header mapping, quoting, empty as NULL, per-type values, watermark on the last batch', async () => {
    const path = join(dir, 'items.csv');
    writeFileSync(
      path,
      'name,id,active,price,tags,seen_at\r\n' +
        'apple,1,yes,1.50,"[""red"",""fruit""]",2024-01-01T10:00:00Z\r\n' +
        '"pear, ""green""",2,f,,,\r\n' +
        '"multi\nline",3,,2.25,[],\r\n',
    );
    const columns =
      'id:bigint:pk,name:text:notnull,active:boolean,price:numeric(12,2),tags:jsonb,seen_at:timestamptz';
    const result = await run([
      'enqueue',
      path,
      '--schema',
      schema,
      '--table',
      'items',
      '--columns',
      columns,
      '--batch-rows',
      '2',
      '--high-watermark',
      '"v1"',
      ...queueFlags,
    ]);
    assert.equal(result.code, 0, result.stderr);
    assert.match(
      result.stdout,
      new RegExp(`Enqueued 3 rows in 2 batches to stream ${schema}.items \\(seq 1–2\\)`),
    );
    await committedAll(`${schema}.items`);
    const rows = await select(
      `SELECT id, name, active, price, tags, seen_at FROM "${schema}".items ORDER BY id`,
    );
    assert.deepEqual(
      rows.map((r) => [r.id, r.name, r.active, r.price, r.tags, r.seen_at?.toISOString() ?? null]),
      [
        ['1', 'apple', true, '1.50', ['red', 'fruit'], '2024-01-01T10:00:00.000Z'],
        ['2', 'pear, "green"', false, null, null, null],
        ['3', 'multi\nline', null, '2.25', [], null],
      ],
    );
    const info = await queue.producer.streamInfo(`${schema}.items`);
    assert.equal(info.committedHighWatermark, 'v1');
  });

  it('enqueues NDJSON from stdin with --table-file; --delete before-first-batch replaces the table once, not per batch', async () => {
    const definition = join(dir, 'events.json');
    writeFileSync(
      definition,
      JSON.stringify({
        schema,
        name: 'events',
        columns: [
          { name: 'id', type: 'integer', primaryKey: true },
          { name: 'body', type: 'jsonb' },
        ],
      }),
    );
    const first = await run(
      ['enqueue', '-', '--table-file', definition, '--format', 'ndjson', ...queueFlags],
      '{"id":1,"body":{"a":1}}\n{"id":2}\n',
    );
    assert.equal(first.code, 0, first.stderr);
    await committedAll(`${schema}.events`);
    const lines = '{"id":10,"body":[1]}\n\n{"id":11,"body":"text"}\r\n{"id":12,"body":null}';
    const second = await run(
      [
        'enqueue',
        '-',
        '--table-file',
        definition,
        '--format',
        'ndjson',
        '--batch-rows',
        '1',
        '--delete',
        'before-first-batch',
        ...queueFlags,
      ],
      lines,
    );
    assert.equal(second.code, 0, second.stderr);
    assert.match(second.stdout, /Enqueued 3 rows in 3 batches/);
    await committedAll(`${schema}.events`);
    const rows = await select(`SELECT id, body FROM "${schema}".events ORDER BY id`);
    assert.deepEqual(
      rows.map((r) => [r.id, r.body]),
      [
        [10, [1]],
        [11, 'text'],
        [12, null],
      ],
    );
  });

  it('refuses bad input naming the file, line and column, and enqueues nothing of that batch', async () => {
    const path = join(dir, 'bad.csv');
    const unknownPath = join(dir, 'unknown.csv');
    writeFileSync(path, 'id,price\n1,1.00\n2,cheap\n');
    writeFileSync(unknownPath, 'id,cost\n1,1.00\n');
    const flags = [
      '--schema',
      schema,
      '--table',
      'bad',
      '--columns',
      'id:bigint:pk,price:numeric(12,2)',
      ...queueFlags,
    ];
    const [bad, unknown, stdin, noTable, badConfig] = await Promise.all([
      run(['enqueue', path, ...flags]),
      run(['enqueue', unknownPath, ...flags]),
      run(['enqueue', '-', ...flags], 'id\n1\n'),
      run(['enqueue', path, ...queueFlags]),
      run(['enqueue', path, ...flags, '--batch-rows', '0']),
    ]);
    assert.equal(bad.code, 2);
    assert.equal(
      bad.stderr.trim(),
      `${path} line 3, column "price" (numeric(12,2)): expected a number or a numeric string, got "cheap"`,
    );
    assert.equal((await queue.producer.streamInfo(`${schema}.bad`)).enqueuedSeq, 0);
    assert.equal(unknown.code, 2);
    assert.match(
      unknown.stderr,
      /unknown\.csv line 1: "cost" is not a column of .*\.bad \(id, price\); pass --ignore-extra-columns/,
    );
    assert.match(stdin.stderr, /Reading stdin: pass --format csv or --format ndjson/);
    assert.match(
      noTable.stderr,
      /the table is needed: --table-file def.json, or --schema, --table and --columns/,
    );
    assert.match(badConfig.stderr, /--batch-rows: Too small/);
  });
});

describe('CSV records', () => {
  async function records(text: string, chunkSize: number) {
    const chunks = async function* () {
      for (let i = 0; i < text.length; i += chunkSize) yield text.slice(i, i + chunkSize);
    };
    const out: [number, string[]][] = [];
    for await (const r of csvRecords(chunks(), ',', 'x.csv')) out.push([r.line, r.fields]);
    return out;
  }

  it('parses quotes, doubled quotes, newlines in quotes, CRLF and blank lines at any chunk boundary', async () => {
    const text = '\uFEFFa,b\r\n"x,1","say ""hi"""\r\n\r\n"two\nlines",\n,""\nlast,"q"';
    const want: [number, string[]][] = [
      [1, ['a', 'b']],
      [2, ['x,1', 'say "hi"']],
      [4, ['two\nlines', '']],
      [6, ['', '']],
      [7, ['last', 'q']],
    ];
    for (const size of [1, 2, 3, 7, 1000])
      assert.deepEqual(await records(text, size), want, `chunks of ${size}`);
  });

  it('names the line of a quoted field never closed, and of text after a closing quote', async () => {
    await assert.rejects(records('a\n"open\nstill', 4), /x\.csv line 2: a quoted field is never closed/);
    await assert.rejects(records('a,b\n"x"y,1', 4), /x\.csv line 2: unexpected "y" after the closing quote/);
  });
});

describe('progress line', () => {
  it('redraws in place on a TTY, prints plain lines elsewhere only when asked', () => {
    const written: string[] = [];
    const stream = { write: (s: string) => written.push(s) > 0, isTTY: true, columns: 20 } as never;
    const tty = new ProgressLine({ stream, minIntervalMs: 0 });
    tty.update('rows 1');
    tty.update('a very long line that does not fit');
    tty.done('done');
    assert.deepEqual(written, ['\rrows 1\u001b[K', '\ra very long line t…\u001b[K', '\rdone\u001b[K\n']);
    written.length = 0;
    new ProgressLine({ stream, tty: false }).update('hidden');
    new ProgressLine({ stream, tty: false, plainIntervalMs: 1 }).update('shown');
    assert.deepEqual(written, ['shown\n']);
  });
});
