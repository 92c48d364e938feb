/**
 * `pg-bulk-ingest enqueue`, run as a process against real Redis, with an in-process Worker
 * committing into real PostgreSQL. The CSV reader's rules on their own: test/unit/csv-records.test.ts.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { produceFile } from '../../producers/file-producer.ts';
import { ProgressLine } from '../../src/ops/progress.ts';
import { runCli } from '../helpers/cli.ts';
import { dropSchema, uniqueName, withClient } from '../helpers/pg.ts';
import { inProcessQueue, REDIS_URL } from '../helpers/queue.ts';
import { plainTable } from '../helpers/tables.ts';
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

  const select = (sql: string) => withClient(async (c) => (await c.query(sql)).rows);

  it('enqueues a CSV file in batches: header mapping, quoting, empty as NULL, per-type values, the file position as watermark', async () => {
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
      ...queueFlags,
    ]);
    assert.equal(result.code, 0, result.stderr);
    assert.match(
      result.stdout,
      new RegExp(`Enqueued 3 rows in 2 batches to stream ${schema}.items \\(seq 1–2\\)`),
    );
    await queue.committedAll(`${schema}.items`);
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
    const content = readFileSync(path);
    assert.deepEqual(info.committedHighWatermark, {
      file: 'items.csv',
      line: 5, // the last row's quoted newline makes it end on line 5
      bytes: content.length,
      sha256: createHash('sha256').update(content).digest('hex'),
    });
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
    await queue.committedAll(`${schema}.events`);
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
    await queue.committedAll(`${schema}.events`);
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

describe('a file enqueued again: `enqueue` and producers/file-producer.ts follow one rule', () => {
  const schema = uniqueName('file_rerun');
  const queue = inProcessQueue();
  const queueFlags = ['--queue', queue.names.queueName, '--prefix', queue.names.prefix];
  const dir = mkdtempSync(join(tmpdir(), 'pgbi-rerun-'));
  after(async () => {
    await dropSchema(schema);
    rmSync(dir, { recursive: true, force: true });
  });

  // No primary key: a row enqueued twice would be in the table twice.
  const tableNamed = (name: string) => plainTable(schema, name);
  const tableFlags = (name: string) => [
    ...['--schema', schema, '--table', name, '--columns', 'id:integer,value:text'],
    ...queueFlags,
  ];

  type Outcome = { code: number; message: string };
  /** The two entry points, each into a table of its own, reading the same file. */
  const entryPoints: Record<string, (path: string) => Promise<Outcome>> = {
    cli: async (path) => {
      const result = await run(['enqueue', path, ...tableFlags('cli'), '--batch-rows', '2']);
      return { code: result.code ?? -1, message: result.code === 0 ? result.stdout : result.stderr.trim() };
    },
    producer: async (path) => {
      try {
        const results = await produceFile(queue.producer, tableNamed('producer'), path, { batchRows: 2 });
        return { code: 0, message: `${results.length} batches` };
      } catch (error) {
        return { code: 2, message: (error as Error).message };
      }
    },
  };

  /** Runs both on the file; returns what each said, once what they enqueued is committed. */
  async function enqueueBoth(path: string): Promise<Record<string, Outcome>> {
    const names = Object.keys(entryPoints);
    const outcomes = await Promise.all(names.map((name) => entryPoints[name]?.(path) as Promise<Outcome>));
    for (const name of names) {
      await waitUntil(
        `${name} committed`,
        async () => {
          const info = await queue.producer.streamInfo(`${schema}.${name}`);
          return info.committedSeq === info.enqueuedSeq;
        },
        { timeoutMs: 30_000 },
      );
    }
    return Object.fromEntries(names.map((name, i) => [name, outcomes[i] as Outcome]));
  }

  /** What each table holds and its stream's state: the same for both entry points. */
  async function state(name: string) {
    const rows = await withClient(
      async (c) => (await c.query(`SELECT id, value FROM "${schema}".${name} ORDER BY id, value`)).rows,
    );
    const info = await queue.producer.streamInfo(`${schema}.${name}`);
    return {
      rows: rows.map((r) => `${r.id}:${r.value}`),
      enqueuedSeq: info.enqueuedSeq,
      watermark: info.committedHighWatermark,
    };
  }

  async function assertBoth(want: { ids: number[]; enqueuedSeq: number; content: Buffer; line: number }) {
    const [cli, producer] = [await state('cli'), await state('producer')];
    assert.deepEqual(producer, cli, 'the file producer did what the CLI did');
    assert.deepEqual(
      cli.rows.map((r) => Number(r.split(':')[0])),
      want.ids,
    );
    assert.equal(cli.enqueuedSeq, want.enqueuedSeq);
    assert.deepEqual(cli.watermark, {
      file: 'export.csv',
      line: want.line,
      bytes: want.content.length,
      sha256: createHash('sha256').update(want.content).digest('hex'),
    });
  }

  it('sends only rows not enqueued yet: unchanged, grown, stopped by a bad line and fixed; a new file under the same name whole', async () => {
    const path = join(dir, 'export.csv');
    // RFC 4180 as spreadsheets write it: CRLF, a quoted field holding a newline and quotes.
    let content = 'id,value\r\n1,plain\r\n2,"two\r\nlines"\r\n3,"say ""hi"""\r\n';
    writeFileSync(path, content);
    let outcomes = await enqueueBoth(path);
    assert.match(outcomes.cli?.message ?? '', /Enqueued 3 rows in 2 batches/);
    assert.equal(outcomes.producer?.message, '2 batches');
    await assertBoth({ ids: [1, 2, 3], enqueuedSeq: 2, content: Buffer.from(content), line: 5 });
    assert.deepEqual((await state('cli')).rows, ['1:plain', '2:two\r\nlines', '3:say "hi"']);

    outcomes = await enqueueBoth(path);
    assert.match(
      outcomes.cli?.message ?? '',
      /Lines 1–5 of .*export\.csv were enqueued before\. No new rows: nothing enqueued/,
    );
    assert.equal(outcomes.producer?.message, '0 batches');
    await assertBoth({ ids: [1, 2, 3], enqueuedSeq: 2, content: Buffer.from(content), line: 5 });

    // Grown, with a bad value in the second batch of this run: the first batch goes in.
    content += '4,four\r\n5,five\r\nsix,bad\r\n7,seven\r\n';
    writeFileSync(path, content);
    outcomes = await enqueueBoth(path);
    for (const outcome of Object.values(outcomes)) {
      assert.equal(outcome.code, 2);
      assert.equal(
        outcome.message,
        `${path} line 8, column "id" (integer): expected an integer or a string of digits, got "six"`,
      );
    }
    const grown = Buffer.from(content.slice(0, content.indexOf('six')));
    await assertBoth({ ids: [1, 2, 3, 4, 5], enqueuedSeq: 3, content: grown, line: 7 });

    content = content.replace('six,bad', '6,six');
    writeFileSync(path, content);
    await enqueueBoth(path);
    await assertBoth({ ids: [1, 2, 3, 4, 5, 6, 7], enqueuedSeq: 4, content: Buffer.from(content), line: 9 });

    // A new export under the same name: its first bytes differ, so it is read from its first line.
    content = 'id,value\n100,new export\n101,again\n';
    writeFileSync(path, content);
    outcomes = await enqueueBoth(path);
    assert.match(
      outcomes.cli?.message ?? '',
      /Read from the first line: the stream's position is in other content \(export\.csv up to line 9\)\. Enqueued 2 rows/,
    );
    await assertBoth({
      ids: [1, 2, 3, 4, 5, 6, 7, 100, 101],
      enqueuedSeq: 5,
      content: Buffer.from(content),
      line: 3,
    });
  });

  it('refuses a stream whose high watermark another producer wrote, rather than replace it', async () => {
    const path = join(dir, 'other.csv');
    writeFileSync(path, 'id,value\n1,x\n');
    for (const name of Object.keys(entryPoints)) {
      await queue.producer.enqueue({
        tables: [tableNamed(`${name}_taken`)],
        highWatermark: '2024-01-01',
        rows: [],
      });
    }
    const cli = await run(['enqueue', path, ...tableFlags('cli_taken')]);
    assert.equal(cli.code, 2);
    const refusal = (stream: string) =>
      `Stream ${stream} has the high watermark "2024-01-01", which is not a file position ({"file", "line", "bytes", "sha256"}): another producer writes this stream, and enqueueing ${path} would replace its watermark. Enqueue the file into a stream of its own (--stream).`;
    assert.equal(cli.stderr.trim(), refusal(`${schema}.cli_taken`));
    await assert.rejects(produceFile(queue.producer, tableNamed('producer_taken'), path), {
      message: refusal(`${schema}.producer_taken`),
    });
    assert.equal(
      (await queue.producer.streamInfo(`${schema}.cli_taken`)).enqueuedSeq,
      1,
      'nothing more enqueued',
    );
  });

  it('reads stdin whole every time, and the whole file again with --delete before-first-batch', async () => {
    const path = join(dir, 'again.csv');
    writeFileSync(path, 'id,value\n1,a\n2,b\n');
    const flags = tableFlags('whole');
    const stdin = 'id,value\n1,a\n2,b\n';
    for (const args of [
      ['-', '--format', 'csv'],
      ['-', '--format', 'csv'],
      [path, '--delete', 'before-first-batch'],
    ]) {
      const result = await run(['enqueue', ...args, ...flags], stdin);
      assert.equal(result.code, 0, result.stderr);
      assert.match(result.stdout, /Enqueued 2 rows/);
    }
    await waitUntil(
      'whole',
      async () => (await queue.producer.streamInfo(`${schema}.whole`)).committedSeq === 3,
      { timeoutMs: 30_000 },
    );
    const rows = await withClient(
      async (c) => (await c.query(`SELECT id FROM "${schema}".whole ORDER BY id`)).rows,
    );
    assert.deepEqual(
      rows.map((r) => r.id),
      [1, 2],
      'stdin twice, then the file replaced the table',
    );
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
