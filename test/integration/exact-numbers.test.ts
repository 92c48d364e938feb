/**
 * Numbers keep the digits they are written with, from NDJSON (the `enqueue` command, as a
 * process) and from the gateway's JSON body, as a CSV field always did: the same input through
 * CSV and NDJSON stores the same values. A number the
 * column cannot hold is refused at the door, not changed.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { runCli } from '../helpers/cli.ts';
import { startTestGateway, type TestGateway, GATEWAY_TOKEN as TOKEN } from '../helpers/gateway.ts';
import { tableComment } from '../helpers/ingest.ts';
import { dropSchema, uniqueName, withClient } from '../helpers/pg.ts';
import { inProcessQueue, REDIS_URL } from '../helpers/queue.ts';

/** `pg-bulk-ingest <args>` on the test's Redis. */
const run = (args: string[]) => runCli(args, { env: { REDIS_URL } });

/** Column name, type, and per row the number as written (the same text in CSV and NDJSON). */
const COLUMNS = 'id:integer:pk,num:numeric,scaled:numeric(30,10),big:bigint,dbl:double precision,txt:text';
const ROWS: [string, string, string, string, string, string][] = [
  ['1', '1234567890.123456789', '1234567890.1234567891', '1234567890123456789', '0.1', '1.0'],
  ['2', '1e400', '-0.0000000001', '-9223372036854775808', '1.7976931348623157e308', '12345678901234567890'],
  ['3', '1.10', '2.50', '9007199254740993', '-0.0', '1e2'],
  ['4', '-0', '0', '0', '5e-324', '-1.5E-7'],
];

describe('exact numbers: NDJSON, CSV and the gateway', () => {
  const schema = uniqueName('exact_numbers');
  const queue = inProcessQueue();
  const queueFlags = ['--queue', queue.names.queueName, '--prefix', queue.names.prefix];
  const dir = mkdtempSync(join(tmpdir(), 'pgbi-exact-'));
  const select = (sql: string) => withClient(async (c) => (await c.query(sql)).rows);
  const asText = (table: string) =>
    select(
      `SELECT id::text, num::text, scaled::text, big::text, dbl::text, txt FROM "${schema}".${table} ORDER BY id`,
    ).then((rows) => rows.map((r) => Object.values(r)));

  after(async () => {
    await dropSchema(schema);
    rmSync(dir, { recursive: true, force: true });
  });

  it('stores the same values from NDJSON as from CSV for the same numbers, every digit kept', async () => {
    const csv = join(dir, 'numbers.csv');
    const ndjson = join(dir, 'numbers.ndjson');
    const names = ['id', 'num', 'scaled', 'big', 'dbl', 'txt'];
    writeFileSync(csv, `${names.join(',')}\n${ROWS.map((r) => r.join(',')).join('\n')}\n`);
    // In NDJSON every value is a JSON number, except the text column's, which is a number too.
    writeFileSync(
      ndjson,
      `${ROWS.map((r) => `{${r.map((v, i) => `"${names[i]}": ${v}`).join(', ')}}`).join('\n')}\n`,
    );
    const [fromCsv, fromNdjson] = await Promise.all([
      run(['enqueue', csv, '--schema', schema, '--table', 'from_csv', '--columns', COLUMNS, ...queueFlags]),
      run([
        'enqueue',
        ndjson,
        '--schema',
        schema,
        '--table',
        'from_ndjson',
        '--columns',
        COLUMNS,
        ...queueFlags,
      ]),
    ]);
    assert.equal(fromCsv.code, 0, fromCsv.stderr);
    assert.equal(fromNdjson.code, 0, fromNdjson.stderr);
    await Promise.all([
      queue.committedAll(`${schema}.from_csv`),
      queue.committedAll(`${schema}.from_ndjson`),
    ]);
    const csvRows = await asText('from_csv');
    const ndjsonRows = await asText('from_ndjson');
    assert.deepEqual(ndjsonRows, csvRows);
    assert.deepEqual(ndjsonRows[0], [
      '1',
      '1234567890.123456789',
      '1234567890.1234567891',
      '1234567890123456789',
      '0.1',
      '1.0',
    ]);
    assert.equal(
      ndjsonRows[1]?.[1],
      `1${'0'.repeat(400)}`,
      '1e400 is 10^400, which numeric holds: not Infinity',
    );
    assert.deepEqual(ndjsonRows[2]?.slice(1), ['1.10', '2.5000000000', '9007199254740993', '-0', '1e2']);
  });

  it('refuses a number its column cannot hold, naming the line and column, and enqueues nothing', async () => {
    const cases: [string, string, RegExp][] = [
      ['{"id": 1.5}', 'id:integer:pk', /line 1, column "id" \(integer\): 1\.5 is not a whole number/],
      [
        '{"id": 1, "d": 1e400}',
        'id:integer:pk,d:double precision',
        /column "d" \(double precision\): 1e400 is out of range/,
      ],
      ['{"id": 1, "d": 1e-400}', 'id:integer:pk,d:float8', /column "d" \(float8\): 1e-400 is out of range/],
      ['{"id": 1, "r": 1e39}', 'id:integer:pk,r:real', /column "r" \(real\): 1e39 is out of range/],
      ['{"id": 40000}', 'id:smallint:pk', /is out of range for smallint \(-32768 to 32767\), got "40000"/],
      [
        '{"id": 1, "b": 9223372036854775808}',
        'id:integer:pk,b:bigint',
        /is out of range for bigint \(.*\), got "9223372036854775808"/,
      ],
    ];
    for (const [i, [line, columns, message]] of cases.entries()) {
      const path = join(dir, `bad${i}.ndjson`);
      writeFileSync(path, `${line}\n`);
      const result = await run([
        'enqueue',
        path,
        '--schema',
        schema,
        '--table',
        `bad${i}`,
        '--columns',
        columns,
        ...queueFlags,
      ]);
      assert.equal(result.code, 2, result.stderr);
      assert.match(result.stderr, message);
      assert.equal((await queue.producer.streamInfo(`${schema}.bad${i}`)).enqueuedSeq, 0);
    }
  });

  describe('gateway', () => {
    let gateway: TestGateway;
    let base: string;
    const post = (body: string) =>
      fetch(`${base}/v1/batches`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', authorization: `Bearer ${TOKEN}` },
        body,
      });
    const tableJson = (name: string) =>
      JSON.stringify({
        schema,
        name,
        columns: [
          { name: 'id', type: 'integer', primaryKey: true },
          { name: 'num', type: 'numeric' },
          { name: 'big', type: 'bigint' },
          { name: 'doc', type: 'jsonb' },
        ],
      });

    before(async () => {
      gateway = await startTestGateway(queue.names);
      base = gateway.base;
    });
    after(async () => {
      await gateway.close();
    });

    it('stores numbers and the high watermark from a JSON body with every digit', async () => {
      const body = `{"version": 1, "tables": [${tableJson('posted')}], "highWatermark": {"id": 1234567890123456789, "f": 1.5},
        "rows": [["${schema}.posted", [1, 1234567890.123456789, 12345678901234567890e-1, {"x": 1234567890.123456789, "10": 1, "a": 12345678901234567890}]]]}`;
      const response = await post(body);
      assert.equal(response.status, 202, await response.clone().text());
      await queue.committedAll(`${schema}.posted`);
      const rows = await select(`SELECT num::text, big::text, doc::text FROM "${schema}".posted`);
      assert.deepEqual(rows, [
        {
          num: '1234567890.123456789',
          big: '1234567890123456789',
          doc: '{"a": 12345678901234567890, "x": 1234567890.123456789, "10": 1}',
        },
      ]);
      assert.equal(
        await withClient((c) => tableComment(c, schema, 'posted')),
        '{"pg-bulk-ingest": {"high-watermark": {"id": 1234567890123456789, "f": 1.5}}}',
      );
      const status = await fetch(`${base}/v1/streams/${schema}.posted`, {
        headers: { authorization: `Bearer ${TOKEN}` },
      });
      assert.match(await status.text(), /"highWatermark":\{"f":1\.5,"id":1234567890123456789\}/);
    });

    it('answers 400, not 500, naming row and column, for a number the column cannot hold', async () => {
      const response = await post(
        `{"version": 1, "tables": [${tableJson('refused')}], "highWatermark": null, "rows": [["${schema}.refused", [1.5, 1, 1, null]]]}`,
      );
      assert.equal(response.status, 400);
      const error = (await response.json()) as { error: string; code: string };
      assert.equal(error.code, 'INVALID_BATCH_JOB');
      assert.match(error.error, /row 1 .*column "id" \(integer\): 1\.5 is not a whole number/);
    });

    it('answers 400, not 500, for metadata nested 5,000 deep or a watermark holding \\u0000', async () => {
      const deep = `${'['.repeat(5_000)}${']'.repeat(5_000)}`;
      // 5,000 levels: the gateway's own bound on the body (512) answers first; under it, the
      // values' bound (100) would.
      for (const [extra, code, message] of [
        [`"highWatermark": null, "metadata": ${deep}`, 'INVALID_BATCH_JOB', /deeper than 512 levels/],
        [
          '"highWatermark": "a\\u0000b"',
          'INVALID_JSON_VALUE',
          /the high watermark cannot be stored as JSON: .*\\u0000/,
        ],
      ] as const) {
        const response = await post(`{"version": 1, "tables": [${tableJson('deep')}], ${extra}, "rows": []}`);
        assert.equal(response.status, 400, extra.slice(0, 40));
        const error = (await response.json()) as { error: string; code: string };
        assert.equal(error.code, code);
        assert.match(error.error, message);
      }
      assert.equal((await queue.producer.streamInfo(`${schema}.deep`)).enqueuedSeq, 0);
    });
  });
});
