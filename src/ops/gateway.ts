/**
 * The HTTP gateway: producing from any language with an HTTP client. Two routes on the ops
 * server (which also serves /metrics, /healthz and /readyz, unauthenticated, for probes):
 *
 *   POST /v1/batches          body: one batch in the wire format (docs/batch-format.md)
 *                             202 {stream, seq, duplicate} once the batch is safely in Redis
 *   GET  /v1/streams          every stream's status
 *   GET  /v1/streams/:stream  one stream's status, 404 if it was never seen
 *
 * Errors are JSON `{error, code, context?}` (STATUS_OF below): 400 a malformed batch (the
 * producer's own message naming the batch, row and column), 401 without the bearer token, 409 a
 * batchId reused with other content, 413 a body, a row or a batch over its limit, 429
 * with Retry-After under a stream's backpressure, 503 with Retry-After when the gateway holds its
 * budget of bodies or Redis does not answer, 500 with a request id only (http-server.ts).
 *
 * Memory: a body is held as bytes within the in-flight budget (gateway-body.ts) and its rows are
 * parsed one at a time (batch-body.ts), twice: once to validate them all, so that a 400 means
 * nothing was stored and a bad batch never waits for room; once to hand them to the Producer,
 * which uploads them in parts as they come.
 *
 * The HTTP layer is node:http with a small router (http-server.ts, whose header says why not fastify).
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { setImmediate as yieldToEventLoop } from 'node:timers/promises';
import { z } from 'zod';
import { type ErrorCode, PgBulkIngestError } from '../errors.ts';
import type { Row } from '../ingest/options.ts';
import { integer, parseOptions } from '../ingest/parse-options.ts';
import type { IngestTable } from '../ingest/table-definition.ts';
import type { StreamAdmin } from '../queue/admin.ts';
import {
  exactWireRows,
  InvalidBatchError,
  parseBatchJob,
  tableKey,
  validateWireRows,
  type WireRow,
  wireRowSchema,
} from '../queue/batch-contract.ts';
import type { EnqueueResult, Producer } from '../queue/producer.ts';
import { bodyRows, splitBatchBody } from './batch-body.ts';
import { type HeldBody, InflightBudget, readBody } from './gateway-body.ts';
import { HttpError } from './http-error.ts';
import {
  type OpsServer,
  type OpsServerOptions,
  type RequestContext,
  type Route,
  sendJson,
  startOpsServer,
} from './http-server.ts';

export interface GatewayOptions {
  readonly producer: Producer;
  readonly admin: StreamAdmin;
  /** The bearer token clients must send; null accepts every request (local-only use). */
  readonly token: string | null;
  /** Largest request body accepted; larger ones get 413 without being read. @default 67108864 (64 MiB) */
  readonly maxBodyBytes?: number;
  /**
   * Bytes of request bodies held at once; a body that does not fit gets 503 with Retry-After.
   * At least maxBodyBytes. @default 134217728 (128 MiB: two bodies of the largest size)
   */
  readonly maxInflightBytes?: number;
  /** Largest row, as JSON; a larger one gets 413 (ROW_TOO_LARGE). @default 1048576 (1 MiB) */
  readonly maxRowBytes?: number;
  /** Retry-After (seconds) sent with 429 and 503. @default 1 */
  readonly retryAfterSeconds?: number;
}

/** The gateway's options and its server's: the ops server's routes are the gateway's. */
export interface GatewayServerOptions extends GatewayOptions, Omit<OpsServerOptions, 'routes'> {}

export const DEFAULT_MAX_BODY_BYTES = 64 * 1024 * 1024;
export const DEFAULT_MAX_INFLIGHT_BYTES = 2 * DEFAULT_MAX_BODY_BYTES;
export const DEFAULT_MAX_ROW_BYTES = 1024 * 1024;

/**
 * The check and default of each limit of GatewayOptions: the `gateway` command's settings, its
 * `--help` and docs/operations.md take theirs from here.
 */
export const gatewayLimitsSchema = z.object({
  maxBodyBytes: integer(1).default(DEFAULT_MAX_BODY_BYTES),
  maxInflightBytes: integer(1).default(DEFAULT_MAX_INFLIGHT_BYTES),
  maxRowBytes: integer(1).default(DEFAULT_MAX_ROW_BYTES),
  retryAfterSeconds: integer(0).default(1),
});
/** Rows validated between two turns of the event loop, so /healthz answers during a large body. */
const ROWS_PER_TURN = 10_000;

/** HTTP status of each error code a request can meet; any other error is a 500. */
const STATUS_OF: Partial<Record<ErrorCode, number>> = {
  INVALID_BATCH_JOB: 400,
  INVALID_ROW: 400,
  INVALID_TABLE_DEFINITION: 400,
  INVALID_OPTIONS: 400,
  BATCH_ID_CONFLICT: 409,
  INVALID_JSON_VALUE: 400,
  BATCH_TOO_LARGE: 413,
  BACKPRESSURE: 429,
  REDIS_UNAVAILABLE: 503,
};

export function startGateway(options: GatewayServerOptions): Promise<OpsServer> {
  return startOpsServer({ ...options, routes: gatewayRoutes(options) });
}

type Handler = (request: IncomingMessage, context: RequestContext) => Promise<[number, unknown]>;

export function gatewayRoutes(options: GatewayOptions): Route[] {
  const authorize = authorizer(options.token);
  const limits = parseOptions(gatewayLimitsSchema, options);
  const { maxBodyBytes: maxBytes, maxRowBytes, retryAfterSeconds } = limits;
  const budget = new InflightBudget(Math.max(limits.maxInflightBytes, maxBytes));
  const guarded =
    (handler: Handler): Route['handler'] =>
    async (request, response, context) => {
      try {
        authorize(request);
        const [status, body] = await handler(request, context);
        sendJson(response, status, body);
      } catch (error) {
        sendError(response, error, String(retryAfterSeconds));
      }
    };
  return [
    {
      method: 'POST',
      path: '/v1/batches',
      handler: guarded(async (request, context) => {
        const body = await readBody(request, { maxBytes, budget, retryAfterSeconds });
        try {
          return [202, await enqueueBody(options.producer, body, maxRowBytes, context)];
        } finally {
          body.release();
        }
      }),
    },
    { method: 'GET', path: '/v1/streams', handler: guarded(async () => [200, await options.admin.status()]) },
    {
      method: 'GET',
      path: '/v1/streams/:stream',
      handler: guarded(async (_request, { params: { stream = '' }, log }) => {
        log.stream = stream;
        const [status] = await options.admin.status(stream);
        if (!status || (status.enqueuedSeq === 0 && status.committedSeq === 0)) {
          throw new HttpError(404, 'NOT_FOUND', `No stream "${stream}": nothing was ever enqueued to it`);
        }
        return [200, status];
      }),
    },
  ];
}

/** Validates every row of the body, then enqueues them as they are parsed again. */
async function enqueueBody(
  producer: Producer,
  body: HeldBody,
  maxRowBytes: number,
  context: RequestContext,
): Promise<EnqueueResult> {
  const label = 'Batch';
  const { envelope, rows: range } = splitBatchBody(body.bytes, label);
  const rowsOf = (): Iterable<[number, unknown]> =>
    range ? bodyRows(body.bytes, range, label, maxRowBytes) : [];
  const isObject = typeof envelope === 'object' && envelope !== null && !Array.isArray(envelope);
  const { job, tables } = parseBatchJob(isObject && range ? { ...envelope, rows: [] } : envelope, label);
  const stream = job.stream ?? tableKey(tables[0] as IngestTable);
  context.log.stream = stream;
  context.log.rows = await validateRows(rowsOf(), tables, label);
  const byKey = new Map(tables.map((t) => [tableKey(t), t]));
  function* rows(): Generator<Row> {
    // Validated above: the same bytes parse to the same rows.
    for (const [index, row] of rowsOf()) {
      const [key, values] = exactRow(tables, row, index, label);
      yield [byKey.get(key) as IngestTable, values];
    }
  }
  const result = await producer.enqueue({
    tables,
    highWatermark: job.highWatermark,
    metadata: job.metadata,
    rows: rows(),
    options: job.options,
    stream,
    ...(job.batchId ? { batchId: job.batchId } : {}),
  });
  context.log.seq = result.seq;
  return result;
}

/** Validates each row as parseBatchJob does in a whole job (the same errors); returns the count. */
async function validateRows(
  rows: Iterable<[number, unknown]>,
  tables: readonly IngestTable[],
  label: string,
): Promise<number> {
  let count = 0;
  for (const [index, row] of rows) {
    validateWireRows(tables, [exactRow(tables, row, index, label)], label, index + 1);
    if (++count % ROWS_PER_TURN === 0) await yieldToEventLoop();
  }
  return count;
}

/** The row as `[table, values]` with its numbers as their columns take them (lossless). */
function exactRow(tables: readonly IngestTable[], row: unknown, index: number, label: string): WireRow {
  return exactWireRows(tables, [wireRow(row, index, label)], label, index + 1)[0] as WireRow;
}

/** The row as `[table, values]`, or the error parseBatchJob gives for it in a whole job. */
function wireRow(row: unknown, index: number, label: string): WireRow {
  if (Array.isArray(row) && row.length === 2 && typeof row[0] === 'string' && Array.isArray(row[1]))
    return row as unknown as WireRow;
  const issue = wireRowSchema.safeParse(row).error?.issues[0];
  const path = ['rows', index, ...(issue?.path ?? [])].map(String).join('.');
  throw new InvalidBatchError(`${label}: ${path}: ${issue?.message ?? 'invalid'}`, { path });
}

/** Checks `Authorization: Bearer <token>` in constant time (both sides hashed to equal length). */
function authorizer(token: string | null): (request: IncomingMessage) => void {
  if (token === null) return () => undefined;
  const expected = createHash('sha256').update(token).digest();
  return (request) => {
    const match = /^Bearer +(\S+) *$/i.exec(request.headers.authorization ?? '');
    const given = createHash('sha256')
      .update(match?.[1] ?? '')
      .digest();
    if (!timingSafeEqual(given, expected) || !match) {
      const why = match ? 'the bearer token is wrong' : 'send "Authorization: Bearer <token>"';
      throw new HttpError(401, 'UNAUTHORIZED', `Unauthorized: ${why}`, {
        'www-authenticate': 'Bearer realm="pg-bulk-ingest"',
      });
    }
  };
}

function sendError(response: ServerResponse, error: unknown, retryAfter: string): void {
  if (error instanceof HttpError) {
    for (const [name, value] of Object.entries(error.headers)) response.setHeader(name, value);
    // An unread body (401, 413, 503 over budget) is not worth receiving: close the connection.
    if (error.status === 401 || error.status === 413 || error.status === 503)
      response.setHeader('connection', 'close');
    sendJson(response, error.status, { error: error.message, code: error.code });
    return;
  }
  const status = error instanceof PgBulkIngestError ? STATUS_OF[error.code] : undefined;
  if (error instanceof PgBulkIngestError && status !== undefined) {
    if (status === 429 || status === 503) response.setHeader('retry-after', retryAfter);
    sendJson(response, status, { error: error.message, code: error.code, context: error.context });
    return;
  }
  throw error; // the ops server logs it and answers 500 with the request id
}
