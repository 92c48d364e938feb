/**
 * The HTTP gateway against real Redis and PostgreSQL: auth, the batch contract's errors as 400,
 * body and batch size limits, backpressure as 429, stream status; and the command's start-up
 * rules (no token, --local-only).
 */
import assert from 'node:assert/strict';
import { request } from 'node:http';
import { after, before, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { pino } from 'pino';
import { Producer } from '../../src/index.ts';
import { ChildOutput } from '../helpers/child-output.ts';
import { runCli, startCli } from '../helpers/cli.ts';
import { startTestGateway, type TestGateway, GATEWAY_TOKEN as TOKEN } from '../helpers/gateway.ts';
import { DATABASE_URL, dropSchema, uniqueName, withClient } from '../helpers/pg.ts';
import { cleanQueue, inProcessWorker, REDIS_URL, uniqueQueue, withWorker } from '../helpers/queue.ts';
import { waitUntil } from '../helpers/wait.ts';

// biome-ignore lint/suspicious/noExplicitAny: JSON bodies, checked by the assertions
const json = (response: Response): Promise<any> => response.json();

describe('gateway', () => {
  const schema = uniqueName('gateway');
  const logs = logCollector();
  const names = uniqueQueue();
  let gateway: TestGateway;
  let base: string;
  const table = {
    schema,
    name: 'events',
    columns: [
      { name: 'id', type: 'bigint', primaryKey: true },
      { name: 'body', type: 'text' },
    ],
  };
  const batch = (rows: unknown[][], extra: Record<string, unknown> = {}) => ({
    version: 1,
    tables: [table],
    highWatermark: `hw-${rows.length}`,
    rows: rows.map((values) => [`${schema}.events`, values]),
    ...extra,
  });
  const post = (body: unknown, token: string | null = TOKEN) =>
    fetch(`${base}/v1/batches`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', ...(token ? { authorization: `Bearer ${token}` } : {}) },
      body: typeof body === 'string' ? body : JSON.stringify(body),
    });
  const get = (path: string) => fetch(`${base}${path}`, { headers: { authorization: `bearer ${TOKEN}` } });

  before(async () => {
    gateway = await startTestGateway(
      names,
      { maxBodyBytes: 64 * 1024, maxPendingBatches: 2, maxBatchBytes: 2000, maxRowBytes: 8000 },
      pino({ level: 'debug' }, logs),
    );
    base = gateway.base;
  });

  after(async () => {
    await gateway.close();
    await cleanQueue(names);
    await dropSchema(schema);
  });

  it('requires the bearer token on /v1 (401 otherwise), not on /healthz, /readyz and /metrics', async () => {
    for (const token of [null, 'wrong-token-0123456789abcdef', `${TOKEN}x`]) {
      const response = await post(batch([[1, 'a']]), token);
      assert.equal(response.status, 401);
      assert.equal(response.headers.get('www-authenticate'), 'Bearer realm="pg-bulk-ingest"');
      assert.match((await json(response)).error, /^Unauthorized/);
    }
    assert.equal((await fetch(`${base}/v1/streams`)).status, 401);
    assert.equal((await fetch(`${base}/healthz`)).status, 200);
    assert.deepEqual(await json(await fetch(`${base}/readyz`)), {
      status: 'ready',
      checks: { postgres: 'ok', redis: 'ok' },
    });
    assert.match(await (await fetch(`${base}/metrics`)).text(), /process_cpu_user_seconds_total/);
  });

  it('enqueues a batch (202), once per batchId, and shows the stream', async () => {
    const response = await post(
      batch(
        [
          [1, 'a'],
          ['2', null],
        ],
        { batchId: 'b-1' },
      ),
    );
    assert.equal(response.status, 202);
    assert.deepEqual(await json(response), { stream: `${schema}.events`, seq: 1, duplicate: false });
    const again = batch(
      [
        [1, 'a'],
        ['2', null],
      ],
      { batchId: 'b-1' },
    );
    assert.deepEqual(await json(await post(again)), {
      stream: `${schema}.events`,
      seq: 1,
      duplicate: true,
    });
    // The same batchId with other rows: refused, not taken for a duplicate (its rows dropped).
    const conflict = await post(batch([[1, 'changed']], { batchId: 'b-1' }));
    assert.equal(conflict.status, 409);
    assert.match(
      (await json(conflict)).error,
      /batchId "b-1" was enqueued before \(as batch 1\) with other content/,
    );
    const status = await json(await get(`/v1/streams/${schema}.events`));
    assert.deepEqual(
      [status.stream, status.enqueuedSeq, status.committedSeq, status.pending],
      [`${schema}.events`, 1, 0, 1],
    );
    assert.ok(
      (await json(await get('/v1/streams'))).some((s: { stream: string }) => s.stream === `${schema}.events`),
    );
    const missing = await get(`/v1/streams/${schema}.nothing`);
    assert.equal(missing.status, 404);
    const encoded = await json(await get(`/v1/streams/${encodeURIComponent(`${schema}.events`)}`));
    assert.equal(encoded.stream, `${schema}.events`);
    const malformed = await get('/v1/streams/bad%E0%A4%A');
    assert.equal(malformed.status, 400);
    assert.match(
      (await json(malformed)).error,
      /Malformed percent-encoding in the path \/v1\/streams\/bad%E0%A4%A/,
    );
  });

  it("answers 400 with the producer's own message naming the batch, row and column", async () => {
    const bad = batch([
      [3, 'ok'],
      ['x', 'bad id'],
    ]);
    const producer = new Producer({ redis: REDIS_URL, ...names });
    const expected = await producer
      .enqueueJob(bad)
      .then(
        () => assert.fail('the producer accepted a bad batch'),
        (error: Error) => error.message,
      )
      .finally(() => producer.close());
    assert.equal(
      expected,
      `Batch, row 2 (${schema}.events), column "id" (bigint): expected an integer or a string of digits, got "x"`,
    );
    const response = await post(bad);
    assert.equal(response.status, 400);
    assert.deepEqual(await json(response), {
      error: expected,
      code: 'INVALID_BATCH_JOB',
      context: { row: 2, table: `${schema}.events`, column: 'id' },
    });
    const envelope = await post({ ...batch([]), version: 2 });
    assert.equal(envelope.status, 400);
    assert.match((await json(envelope)).error, /^Batch: version: /);
    const notJson = await post('{"version": 1,');
    assert.equal(notJson.status, 400);
    assert.match((await json(notJson)).error, /^Batch: the body is not valid JSON/);
  });

  it('answers 429 with Retry-After under backpressure, and 413 for a batch over maxBatchBytes', async () => {
    assert.equal((await post(batch([[4, 'd']]))).status, 202); // the stream now has 2 pending: its bound
    const refused = await post(batch([[5, 'e']]));
    assert.equal(refused.status, 429);
    assert.equal(refused.headers.get('retry-after'), '1');
    assert.equal((await json(refused)).code, 'BACKPRESSURE');
    const big = await post(batch([[6, 'x'.repeat(3000)]], { stream: `${schema}.big` }));
    assert.equal(big.status, 413);
    const body = await json(big);
    assert.equal(body.code, 'BATCH_TOO_LARGE');
    assert.match(body.error, /split it into smaller batches/);
  });

  it('answers 413 for a body over the limit without reading it: by Content-Length, or while streaming', async () => {
    const declared = await rawPost({ 'content-length': String(64 * 1024 + 1) }, 0);
    assert.equal(declared.status, 413);
    assert.match(declared.body, /larger than the gateway's limit of 65536 bytes/);
    const streamed = await rawPost({ 'transfer-encoding': 'chunked' }, 16 * 1024 * 1024);
    assert.equal(streamed.status, 413);
    assert.ok(streamed.sent < 16 * 1024 * 1024, `stopped reading after ${streamed.sent} bytes`);
  });

  it('answers 400, not 500, to a value, metadata or watermark nested 2,500 deep, and scans nesting of 30,000 without overflowing', async () => {
    const nested = (depth: number) => `${'['.repeat(depth)}1${']'.repeat(depth)}`;
    const { rows: _, ...head } = batch([], { stream: `${schema}.deep` });
    const envelope = `${JSON.stringify(head).slice(0, -1)},`; // '{"version":1,...,'
    const jsonbTable = {
      schema,
      name: 'docs',
      columns: [
        { name: 'id', type: 'bigint', primaryKey: true },
        { name: 'doc', type: 'jsonb' },
      ],
    };
    const bodies = {
      metadata: `${envelope}"metadata":${nested(2500)},"rows":[]}`,
      highWatermark: `${JSON.stringify({ ...batch([]), highWatermark: 0 }).slice(0, -1)},"highWatermark":${nested(2500)}}`,
      jsonb: `{"version":1,"tables":[${JSON.stringify(jsonbTable)}],"highWatermark":null,"rows":[["${schema}.docs",[1,${nested(2500)}]]]}`,
      deepest: `${envelope}"metadata":${nested(30_000)},"rows":[]}`,
    };
    for (const [what, body] of Object.entries(bodies)) {
      const response = await post(body);
      const answer = await json(response);
      assert.equal(response.status, 400, `${what}: ${JSON.stringify(answer)}`);
      assert.equal(answer.code, 'INVALID_BATCH_JOB');
      assert.match(answer.error, /^Batch: the body nests arrays and objects deeper than 512 levels/);
    }
    // Under the body's bound, the values' own bound applies (metadata: 100 levels, MAX_JSON_DEPTH):
    // a clear 400 either way, never a stack overflow; and metadata within it is accepted.
    const deeper = await post(`${envelope}"metadata":${nested(510)},"rows":[]}`);
    assert.equal(deeper.status, 400);
    assert.match((await json(deeper)).error, /metadata/);
    assert.equal((await post(`${envelope}"metadata":${nested(90)},"rows":[]}`)).status, 202);
  });

  it('answers 400 naming the row for a malformed rows array, row or row shape', async () => {
    const prefix = JSON.stringify(batch([])).slice(0, -'[]}'.length);
    const cases: [string, RegExp][] = [
      [
        `${prefix}[["${schema}.events",[1,"a"]] ["${schema}.events",[2,"b"]]]}`,
        /expected ',' or '\]' after a row/,
      ],
      [`${prefix}[["${schema}.events",[1,"a"]],["${schema}.events",[2,tru]]]}`, /not valid JSON \(row 2\)/],
      [`${prefix}[["${schema}.events",[1,"a"]],{"t":1}]}`, /^Batch: rows\.1: /],
      [`${prefix}[],"rows":[]}`, /"rows" twice/],
      [`${prefix}["${schema}.events",[1,"a"]]}`, /^Batch: rows\.0: /],
      [`${prefix}[["${schema}.events",[1,"a"]]]} x`, /goes on after its object/],
      [`${prefix}[["${schema}.events",[1,"a\\"]]`, /ends inside a string/],
      [`${prefix}[["${schema}.events",[1,"a"]]`, /ends inside an array or object/],
    ];
    for (const [body, error] of cases) {
      const response = await post(body);
      const answer = await json(response);
      assert.equal(response.status, 400, body);
      assert.equal(answer.code, 'INVALID_BATCH_JOB');
      assert.match(answer.error, error, body);
    }
    // Rows before the tables, strings holding brackets, quotes and escapes: the scanner's business.
    const tricky = `{"rows":[["${schema}.events",[7,"]}[{\\"\\\\"]] ],"version":1,"stream":"${schema}.tricky","tables":[${JSON.stringify(table)}],"highWatermark":"]"}`;
    const accepted = await post(tricky);
    assert.equal(accepted.status, 202, await accepted.clone().text());
    assert.deepEqual(await json(accepted), { stream: `${schema}.tricky`, seq: 1, duplicate: false });
  });

  it('answers 413 ROW_TOO_LARGE for a row over GATEWAY_MAX_ROW_BYTES (a huge row takes twenty times its size parsed)', async () => {
    const response = await post(batch([[10, 'x'.repeat(8000)]], { stream: `${schema}.wide` }));
    assert.equal(response.status, 413);
    const answer = await json(response);
    assert.equal(answer.code, 'ROW_TOO_LARGE');
    assert.match(
      answer.error,
      /^Batch, row 1: takes 80\d\d bytes of JSON; the gateway accepts rows of at most 8000/,
    );
  });

  it('accepts a pretty-printed body (whitespace anywhere JSON allows it)', async () => {
    const pretty = JSON.stringify(
      batch(
        [
          [11, 'k'],
          [12, 'l'],
        ],
        { stream: `${schema}.pretty` },
      ),
      null,
      '\t ',
    );
    const response = await post(`\r\n ${pretty.replaceAll(',', ' \n, ')}\n`);
    assert.equal(response.status, 202, await response.clone().text());
    assert.equal((await json(await get(`/v1/streams/${schema}.pretty`))).enqueuedSeq, 1);
  });

  it('logs every request (method, path, status, duration, stream, seq) and never the token', async () => {
    logs.lines.length = 0;
    const accepted = await post(batch([[8, 'h']], { stream: `${schema}.logged` }));
    assert.equal(accepted.status, 202);
    assert.equal((await post(batch([[8, 'h']]), `${TOKEN}-wrong`)).status, 401);
    await fetch(`${base}/healthz`);
    await get(`/v1/streams/${schema}.logged`);
    const requests = logs.lines.filter((line) => line.msg === 'request');
    assert.deepEqual(
      requests.map((r) => [r.method, r.path, r.status, r.level]),
      [
        ['POST', '/v1/batches', 202, 30],
        ['POST', '/v1/batches', 401, 30],
        ['GET', '/healthz', 200, 20],
        ['GET', `/v1/streams/${schema}.logged`, 200, 30],
      ],
    );
    const [posted] = requests;
    assert.equal(posted.stream, `${schema}.logged`);
    assert.equal(posted.seq, 1);
    assert.equal(posted.rows, 1);
    assert.equal(typeof posted.durationMs, 'number');
    assert.equal(posted.requestId, accepted.headers.get('x-request-id'));
    assert.equal(requests[3].stream, `${schema}.logged`);
    assert.doesNotMatch(logs.text(), new RegExp(TOKEN));
  });

  it('answers 503 with Retry-After when the bodies in flight would pass GATEWAY_MAX_INFLIGHT_BYTES, without reading the body', async () => {
    const small = await startTestGateway(names, {
      maxBodyBytes: 40_000,
      maxInflightBytes: 50_000,
      retryAfter: 2,
    });
    const smallBase = small.base;
    try {
      // A slow client holds 40,000 bytes of the budget; the next body of 20,000 does not fit.
      const held = request(`${smallBase}/v1/batches`, {
        method: 'POST',
        headers: { authorization: `Bearer ${TOKEN}`, 'content-length': '40000' },
      });
      const heldAnswer = new Promise<number>((resolve) =>
        held.on('response', (res) => resolve(res.statusCode ?? 0)),
      );
      held.write('{');
      await sleep(300); // for the gateway to read the headers and take the 40,000 bytes
      const refused = await rawPost({ 'content-length': '20000' }, 0, smallBase);
      assert.equal(refused.status, 503);
      assert.equal(refused.headers['retry-after'], '2');
      assert.equal(JSON.parse(refused.body).code, 'GATEWAY_BUSY');
      assert.match(JSON.parse(refused.body).error, /GATEWAY_MAX_INFLIGHT_BYTES 50000/);
      // Without a Content-Length, the chunks are counted as they come.
      const chunked = await rawPost({ 'transfer-encoding': 'chunked' }, 1024 * 1024, smallBase);
      assert.equal(chunked.status, 503);
      // Once the slow body is answered, its bytes are free again; so are those of a client that
      // goes away in the middle of its body.
      held.end(' '.repeat(39_999));
      assert.equal(await heldAnswer, 400);
      const gone = request(`${smallBase}/v1/batches`, {
        method: 'POST',
        headers: { authorization: `Bearer ${TOKEN}`, 'content-length': '40000' },
      });
      gone.on('error', () => undefined);
      gone.write('{');
      await sleep(300);
      gone.destroy();
      await sleep(300);
      const body = JSON.stringify(batch([[9, 'i'.repeat(15_000)]], { stream: `${schema}.budget` }));
      assert.ok(body.length > 10_000, 'fits only if the 40,000 bytes were given back');
      const accepted = await fetch(`${smallBase}/v1/batches`, {
        method: 'POST',
        headers: { authorization: `Bearer ${TOKEN}` },
        body,
      });
      assert.equal(accepted.status, 202);
    } finally {
      await small.close();
    }
  });

  it('stores exactly what Producer.enqueueJob stores, for every value encoding', async () => {
    const other = uniqueName('gateway_twin');
    const columns = [
      { name: 'id', type: 'bigint', primaryKey: true },
      { name: 't', type: 'text' },
      { name: 'b', type: 'bytea' },
      { name: 'j', type: 'jsonb' },
      { name: 'a', type: 'integer[]' },
      { name: 'ts', type: 'timestamptz' },
      { name: 'n', type: 'numeric(12,2)' },
      { name: 'f', type: 'double precision' },
      { name: 'bo', type: 'boolean' },
      { name: 'u', type: 'uuid' },
    ];
    const values = [
      [
        1,
        'tab\there "q" back\\slash ü 😀 ]}[{',
        'AAEC',
        { k: ['v', 1, null, { ']': '[' }], ü: 'é' },
        [1, null, 3],
      ],
      [2, null, '\\x000102', [1, 'two', [3]], []],
      [3, '', '', 'a jsonb string', null],
    ].map((row, i) => [...row, '2024-05-01T09:59:59.123Z', `${i}.50`, i + 0.25, i % 2 === 0, null]);
    const job = (tableSchema: string) => ({
      version: 1,
      tables: [{ schema: tableSchema, name: 'twin', columns }],
      highWatermark: { at: 'ü' },
      rows: values.map((row) => [`${tableSchema}.twin`, row]),
    });
    // Escapes the gateway's scanner must step over, which JSON.stringify would not write.
    const body = JSON.stringify(job(schema)).replaceAll('ü', '\\u00fc').replaceAll('/', '\\/');
    assert.equal((await post(body)).status, 202);
    const producer = new Producer({ redis: REDIS_URL, ...names });
    try {
      await producer.enqueueJob(job(other));
    } finally {
      await producer.close();
    }
    try {
      await withWorker(inProcessWorker(names), async () => {
        for (const s of [schema, other]) {
          await waitUntil(
            `${s}.twin committed`,
            async () => (await json(await get(`/v1/streams/${s}.twin`))).committedSeq === 1,
            { timeoutMs: 20_000 },
          );
        }
        const rows = (s: string) =>
          withClient(
            async (c) => (await c.query(`SELECT t::text AS row FROM "${s}".twin t ORDER BY id`)).rows,
          );
        const [viaGateway, viaProducer] = [await rows(schema), await rows(other)];
        assert.equal(viaGateway.length, 3);
        assert.deepEqual(viaGateway, viaProducer);
      });
    } finally {
      await dropSchema(other);
    }
  });

  it('commits what it enqueued once a worker runs', async () => {
    await withWorker(inProcessWorker(names), async () => {
      await waitUntil(
        'both batches committed',
        async () => (await json(await get(`/v1/streams/${schema}.events`))).committedSeq === 2,
        { timeoutMs: 20_000 },
      );
      const status = await json(await get(`/v1/streams/${encodeURIComponent(`${schema}.events`)}`));
      assert.equal(status.highWatermark, 'hw-1');
      assert.equal(status.pending, 0);
    });
  });

  /** POSTs `size` bytes of body slowly enough for the server to answer first. */
  function rawPost(
    headers: Record<string, string>,
    size: number,
    to = base,
  ): Promise<{ status: number; body: string; sent: number; headers: Record<string, unknown> }> {
    return new Promise((resolve, reject) => {
      let sent = 0;
      let done = false;
      const req = request(
        `${to}/v1/batches`,
        { method: 'POST', headers: { authorization: `Bearer ${TOKEN}`, ...headers } },
        (res) => {
          done = true;
          let body = '';
          res.on('data', (d) => (body += d));
          res.on('end', () => resolve({ status: res.statusCode ?? 0, body, sent, headers: res.headers }));
        },
      );
      req.on('error', (error) => (done ? undefined : reject(error)));
      const chunk = Buffer.alloc(8192, 'x');
      const write = () => {
        if (done || sent >= size) return;
        sent += chunk.length;
        req.write(chunk, () => setImmediate(write));
      };
      req.flushHeaders();
      write();
    });
  }
});

describe('gateway while Redis is down', () => {
  it('answers 503 with Retry-After within GATEWAY_REDIS_TIMEOUT_MS instead of hanging, naming the batchId to retry with', {
    timeout: 20_000,
  }, async () => {
    const down = await startTestGateway(uniqueQueue(), {
      redisUrl: 'redis://127.0.0.1:1', // nothing listens there
      token: undefined,
      localOnly: true,
      redisTimeoutMs: 300,
      retryAfter: 3,
    });
    try {
      const base = down.base;
      const started = Date.now();
      const response = await fetch(`${base}/v1/batches`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({
          version: 1,
          batchId: 'retry-me',
          tables: [{ schema: 's', name: 't', columns: [{ name: 'id', type: 'integer' }] }],
          highWatermark: null,
          rows: [['s.t', [1]]],
        }),
      });
      assert.equal(response.status, 503);
      assert.ok(Date.now() - started < 5000, `answered after ${Date.now() - started} ms`);
      assert.equal(response.headers.get('retry-after'), '3');
      const body = await json(response);
      assert.equal(body.code, 'REDIS_UNAVAILABLE');
      assert.match(body.error, /Redis did not answer within 300 ms .*batchId "retry-me"/);
      const ready = await fetch(`${base}/readyz`);
      assert.equal(ready.status, 503);
      assert.match(JSON.stringify(await json(ready)), /redis/);
    } finally {
      await down.close();
    }
  });
});

describe('gateway on an unexpected error', () => {
  it('answers 500 with a request id only, and logs the error under that id', async () => {
    const logs = logCollector();
    const broken = await startTestGateway(
      uniqueQueue(),
      {
        databaseUrl: DATABASE_URL.replace(/\/[^/]*$/, '/pgbi_no_such_database'),
        token: undefined,
        localOnly: true,
      },
      pino({ level: 'info' }, logs),
    );
    try {
      // One named stream: its committed state is read from PostgreSQL (a database that does not exist).
      const response = await fetch(`${broken.base}/v1/streams/some.stream`);
      assert.equal(response.status, 500);
      const requestId = response.headers.get('x-request-id');
      const body = await json(response);
      assert.deepEqual(body, {
        error: `Internal error: the server's log has the details under requestId ${requestId}`,
        code: 'INTERNAL_ERROR',
        requestId,
      });
      const failure = logs.lines.find((line) => line.msg === 'request failed');
      assert.equal(failure?.requestId, requestId);
      assert.match(failure?.err?.message, /pgbi_no_such_database/);
      const logged = logs.lines.find((line) => line.msg === 'request');
      assert.deepEqual([logged?.status, logged?.requestId, logged?.level], [500, requestId, 40]);
    } finally {
      await broken.close();
    }
  });
});

describe('gateway command', () => {
  /** The test's PostgreSQL and Redis, and no GATEWAY_TOKEN but `extra`'s. */
  const gatewayEnv = (extra: Record<string, string> = {}) => ({
    GATEWAY_TOKEN: undefined,
    DATABASE_URL,
    REDIS_URL,
    ...extra,
  });

  it('refuses to start without a token, or with a short one, unless --local-only', async () => {
    const [none, short, exposed] = await Promise.all([
      runCli(['gateway', '--port', '0'], { env: gatewayEnv() }),
      runCli(['gateway', '--port', '0'], { env: gatewayEnv({ GATEWAY_TOKEN: 'tiny-secret' }) }),
      runCli(['gateway', '--local-only', '--host', '0.0.0.0'], { env: gatewayEnv() }),
    ]);
    assert.equal(none.code, 2);
    assert.match(
      none.stderr,
      /--token \/ GATEWAY_TOKEN: is required: set GATEWAY_TOKEN, or pass --local-only/,
    );
    assert.match(short.stderr, /--token \/ GATEWAY_TOKEN: must be at least 16 characters/);
    assert.doesNotMatch(short.stderr, /tiny-secret/, 'the token, even a wrong one, is never echoed');
    assert.match(exposed.stderr, /--host \/ GATEWAY_HOST: --local-only listens on 127.0.0.1 only/);
  });

  it('--local-only listens on 127.0.0.1 without auth, and stops cleanly on SIGTERM', async () => {
    const names = uniqueQueue();
    const { child, done } = startCli(
      ['gateway', '--local-only', '--port', '0', '--queue', names.queueName, '--prefix', names.prefix],
      { env: gatewayEnv() },
    );
    try {
      const url = (await new ChildOutput(child).waitFor(/"url":"(http:\/\/127\.0\.0\.1:\d+)"/))[1];
      const streams = await fetch(`${url}/v1/streams`);
      assert.equal(streams.status, 200);
      child.kill('SIGTERM');
      assert.equal((await done).code, 0);
    } finally {
      child.kill('SIGKILL');
      await cleanQueue(names);
    }
  });
});

/** A pino destination keeping every line, parsed. */
function logCollector() {
  // biome-ignore lint/suspicious/noExplicitAny: log lines, checked by the assertions
  const lines: any[] = [];
  const raw: string[] = [];
  return {
    lines,
    text: () => raw.join(''),
    write(line: string) {
      raw.push(line);
      lines.push(JSON.parse(line));
    },
  };
}
