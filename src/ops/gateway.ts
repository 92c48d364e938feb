/**
 * The HTTP gateway: producing from any language with an HTTP client. Two routes on the ops
 * server (which also serves /metrics, /healthz and /readyz, unauthenticated, for probes):
 *
 *   POST /v1/batches          body: one batch in the wire format (docs/batch-format.md)
 *                             202 {stream, seq, duplicate} once the batch is safely in Redis
 *   GET  /v1/streams          every stream's status
 *   GET  /v1/streams/:stream  one stream's status, 404 if it was never seen
 *
 * Errors are JSON `{error, code, context}`: 400 for a malformed batch (the producer's own message
 * naming the batch, row and column), 401 without the bearer token, 413 for a body over the
 * limit or a batch over maxBatchBytes, 429 with Retry-After under backpressure.
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Registry } from 'prom-client';
import { type ErrorCode, PgBulkIngestError } from '../errors.ts';
import { parseJsonKeepingNumbers } from '../ingest/exact-json.ts';
import type { StreamAdmin } from '../queue/admin.ts';
import type { Producer } from '../queue/producer.ts';
import { type OpsServer, type Route, sendJson, startOpsServer } from './http-server.ts';

export interface GatewayOptions {
  readonly producer: Producer;
  readonly admin: StreamAdmin;
  /** The bearer token clients must send; null accepts every request (local-only use). */
  readonly token: string | null;
  /** Largest request body accepted; larger ones get 413 without being read. @default 67108864 (64 MiB) */
  readonly maxBodyBytes?: number;
  /** Retry-After (seconds) sent with 429 under backpressure. @default 1 */
  readonly retryAfterSeconds?: number;
}

export interface GatewayServerOptions extends GatewayOptions {
  readonly port: number;
  /** @default '0.0.0.0' */
  readonly host?: string;
  readonly registry: Registry;
  readonly readinessChecks: Readonly<Record<string, () => Promise<unknown>>>;
}

export const DEFAULT_MAX_BODY_BYTES = 64 * 1024 * 1024;

/** A refusal with its HTTP status. */
class HttpError extends Error {
  readonly status: number;
  readonly code: string;
  readonly headers: Readonly<Record<string, string>>;

  constructor(status: number, code: string, message: string, headers: Record<string, string> = {}) {
    super(message);
    this.status = status;
    this.code = code;
    this.headers = headers;
  }
}

const STATUS_OF: Partial<Record<ErrorCode, number>> = {
  INVALID_BATCH_JOB: 400,
  INVALID_ROW: 400,
  INVALID_TABLE_DEFINITION: 400,
  INVALID_OPTIONS: 400,
  INVALID_JSON_VALUE: 400,
  BATCH_TOO_LARGE: 413,
  BACKPRESSURE: 429,
  REDIS_UNAVAILABLE: 503,
};

export function startGateway(options: GatewayServerOptions): Promise<OpsServer> {
  return startOpsServer({
    port: options.port,
    ...(options.host ? { host: options.host } : {}),
    registry: options.registry,
    readinessChecks: options.readinessChecks,
    routes: gatewayRoutes(options),
  });
}

export function gatewayRoutes(options: GatewayOptions): Route[] {
  const authorize = authorizer(options.token);
  const maxBodyBytes = options.maxBodyBytes ?? DEFAULT_MAX_BODY_BYTES;
  const retryAfter = String(options.retryAfterSeconds ?? 1);
  const guarded =
    (
      handler: (request: IncomingMessage, params: Record<string, string>) => Promise<[number, unknown]>,
    ): Route['handler'] =>
    async (request, response, params) => {
      try {
        authorize(request);
        const [status, body] = await handler(request, params);
        sendJson(response, status, body);
      } catch (error) {
        sendError(response, error, retryAfter);
      }
    };
  return [
    {
      method: 'POST',
      path: '/v1/batches',
      handler: guarded(async (request) => {
        const body = await readBody(request, maxBodyBytes);
        let batch: unknown;
        try {
          // Lossless: each number keeps its digits until its column decides (wire-numbers.ts).
          batch = parseJsonKeepingNumbers(body.toString('utf8'));
        } catch (error) {
          throw new HttpError(
            400,
            'INVALID_BATCH_JOB',
            `Batch: the body is not valid JSON: ${(error as Error).message}`,
          );
        }
        return [202, await options.producer.enqueueJob(batch, 'Batch')];
      }),
    },
    { method: 'GET', path: '/v1/streams', handler: guarded(async () => [200, await options.admin.status()]) },
    {
      method: 'GET',
      path: '/v1/streams/:stream',
      handler: guarded(async (_request, { stream = '' }) => {
        const [status] = await options.admin.status(stream);
        if (!status || (status.enqueuedSeq === 0 && status.committedSeq === 0)) {
          throw new HttpError(404, 'NOT_FOUND', `No stream "${stream}": nothing was ever enqueued to it`);
        }
        return [200, status];
      }),
    },
  ];
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

/**
 * The request body, up to `limit` bytes. Beyond it (by Content-Length or while streaming) this
 * stops reading and rejects with 413; the response closes the connection, so the excess is
 * never buffered.
 */
function readBody(request: IncomingMessage, limit: number): Promise<Buffer> {
  const tooLarge = () =>
    new HttpError(
      413,
      'BODY_TOO_LARGE',
      `The body is larger than the gateway's limit of ${limit} bytes (GATEWAY_MAX_BODY_BYTES): split the batch into smaller ones`,
    );
  const declared = Number(request.headers['content-length']);
  if (Number.isFinite(declared) && declared > limit) return Promise.reject(tooLarge());
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let length = 0;
    const stop = () => {
      request.off('data', onData).off('end', onEnd).off('error', onError);
    };
    const onData = (chunk: Buffer) => {
      length += chunk.length;
      if (length > limit) {
        stop();
        request.pause();
        reject(tooLarge());
      } else chunks.push(chunk);
    };
    const onEnd = () => {
      stop();
      resolve(Buffer.concat(chunks, length));
    };
    const onError = (error: Error) => {
      stop();
      reject(error);
    };
    request.on('data', onData).on('end', onEnd).on('error', onError);
  });
}

function sendError(response: ServerResponse, error: unknown, retryAfter: string): void {
  if (error instanceof HttpError) {
    for (const [name, value] of Object.entries(error.headers)) response.setHeader(name, value);
    // An unread body (401, 413) is not worth receiving: close the connection after answering.
    if (error.status === 401 || error.status === 413) response.setHeader('connection', 'close');
    sendJson(response, error.status, { error: error.message, code: error.code });
    return;
  }
  const status = error instanceof PgBulkIngestError ? STATUS_OF[error.code] : undefined;
  if (error instanceof PgBulkIngestError && status !== undefined) {
    if (status === 429 || status === 503) response.setHeader('retry-after', retryAfter);
    sendJson(response, status, { error: error.message, code: error.code, context: error.context });
    return;
  }
  throw error; // the ops server answers 500
}
