/**
 * The small HTTP server every process (worker, gateway) runs: `/metrics` for Prometheus,
 * `/healthz` (the process is up), `/readyz` (PostgreSQL and Redis answer), plus any routes the
 * process adds (the gateway's).
 *
 * Plain node:http, not fastify (weighed for the gateway): fastify would bring pino
 * request logging, body limits, schema validation and graceful close, but the one hard part here,
 * reading a 64 MiB batch within a memory budget and splitting its rows without building them
 * all (gateway-body.ts, batch-body.ts), would be a custom content-type parser in fastify too;
 * its default JSON parser builds the whole object graph, the very thing that ran the gateway out
 * of memory. What is left is six routes, one request log line and one error mapping: about the
 * size of the plugin glue, without a dependency and its upgrade cadence.
 *
 * Every request is logged once it ends (method, path, status, duration, request id, plus what
 * the route adds, e.g. stream and seq); probes (`/metrics`, `/healthz`, `/readyz`) at `debug`,
 * routes at `info`. Headers are never logged (the bearer token travels in one). A handler's
 * unexpected error is logged with the request id and answered 500 with that id only: its text
 * may hold connection strings, SQL or file paths.
 */
import { randomUUID } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { type Logger, pino } from 'pino';
import type { Registry } from 'prom-client';
import { stringifyJson } from '../ingest/exact-json.ts';
import { withTimeout } from './with-timeout.ts';

export interface RequestContext {
  /** Sent back as `x-request-id` and logged with the request; a 500 answers only this. */
  readonly id: string;
  /** The `:name` segments of the route's path, decoded. */
  readonly params: Readonly<Record<string, string>>;
  /** Fields the handler adds to the request's log line (e.g. `stream`, `seq`). */
  readonly log: Record<string, unknown>;
}

export type RouteHandler = (
  request: IncomingMessage,
  response: ServerResponse,
  context: RequestContext,
) => Promise<void>;

export interface Route {
  readonly method: 'GET' | 'POST';
  /** A path with `:name` segments, e.g. `/v1/streams/:stream`. */
  readonly path: string;
  readonly handler: RouteHandler;
}

export interface OpsServerOptions {
  readonly port: number;
  /** @default '0.0.0.0' */
  readonly host?: string;
  readonly registry: Registry;
  /** Each check resolves when its dependency answers, rejects otherwise; `/readyz` runs them all. */
  readonly readinessChecks: Readonly<Record<string, () => Promise<unknown>>>;
  readonly routes?: readonly Route[];
  /** Request log and unexpected errors. @default pino() at level info */
  readonly logger?: Logger;
}

export interface OpsServer {
  readonly server: Server;
  /** The port really listened on (useful with port 0). */
  readonly port: number;
  close(): Promise<void>;
}

const PROBES = new Set(['/metrics', '/healthz', '/readyz']);

export async function startOpsServer(options: OpsServerOptions): Promise<OpsServer> {
  const logger = options.logger ?? pino();
  const routes: Route[] = [
    { method: 'GET', path: '/metrics', handler: (_q, res) => sendMetrics(res, options.registry) },
    { method: 'GET', path: '/healthz', handler: async (_q, res) => sendJson(res, 200, { status: 'ok' }) },
    {
      method: 'GET',
      path: '/readyz',
      handler: (_q, res, context) => sendReadiness(res, options.readinessChecks, logger, context.id),
    },
    ...(options.routes ?? []),
  ];
  const server = createServer((request, response) => {
    const started = performance.now();
    const path = pathOf(request);
    const context: RequestContext = { id: randomUUID(), params: {}, log: {} };
    response.setHeader('x-request-id', context.id);
    response.on('close', () => {
      const finished = response.writableFinished;
      const status = finished ? response.statusCode : 'aborted';
      const level = !finished || response.statusCode >= 500 ? 'warn' : PROBES.has(path) ? 'debug' : 'info';
      logger[level](
        {
          requestId: context.id,
          method: request.method,
          path,
          status,
          durationMs: Math.round(performance.now() - started),
          ...context.log,
        },
        'request',
      );
    });
    dispatch(routes, request, response, path, context).catch((error: unknown) => {
      logger.error({ err: error, requestId: context.id }, 'request failed');
      if (response.headersSent) response.destroy();
      else
        sendJson(response, 500, {
          error: `Internal error: the server's log has the details under requestId ${context.id}`,
          code: 'INTERNAL_ERROR',
          requestId: context.id,
        });
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port, options.host ?? '0.0.0.0', () => resolve());
  });
  return {
    server,
    port: (server.address() as AddressInfo).port,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeIdleConnections(); // keep-alive sockets would hold close() open until they time out
      }),
  };
}

function pathOf(request: IncomingMessage): string {
  try {
    return new URL(request.url ?? '/', 'http://localhost').pathname;
  } catch {
    return '/'; // unreachable for what node:http accepts; a log line must not throw
  }
}

async function dispatch(
  routes: readonly Route[],
  request: IncomingMessage,
  response: ServerResponse,
  path: string,
  context: RequestContext,
) {
  let pathMatched = false;
  for (const route of routes) {
    let params: Record<string, string> | undefined;
    try {
      params = matchPath(route.path, path);
    } catch (error) {
      if (!(error instanceof URIError)) throw error;
      return sendJson(response, 400, { error: `Malformed percent-encoding in the path ${path}` });
    }
    if (!params) continue;
    pathMatched = true;
    if (route.method === request.method) return route.handler(request, response, { ...context, params });
  }
  sendJson(response, pathMatched ? 405 : 404, {
    error: pathMatched ? `${request.method} not allowed on ${path}` : `No route ${path}`,
  });
}

function matchPath(pattern: string, path: string): Record<string, string> | undefined {
  const want = pattern.split('/');
  const got = path.split('/');
  if (want.length !== got.length) return undefined;
  const params: Record<string, string> = {};
  for (const [i, segment] of want.entries()) {
    const actual = got[i] ?? '';
    if (segment.startsWith(':')) params[segment.slice(1)] = decodeURIComponent(actual);
    else if (segment !== actual) return undefined;
  }
  return params;
}

export function sendJson(response: ServerResponse, status: number, body: unknown): void {
  response.writeHead(status, { 'content-type': 'application/json' });
  response.end(stringifyJson(body)); // exact: a bigint high watermark in a status keeps its digits
}

async function sendMetrics(response: ServerResponse, registry: Registry) {
  const text = await registry.metrics();
  response.writeHead(200, { 'content-type': registry.contentType });
  response.end(text);
}

/**
 * `/readyz` answers without a token: a failing check says only that it failed; why (its error
 * may name hosts, users or paths) goes to the log, under the request id.
 */
async function sendReadiness(
  response: ServerResponse,
  checks: OpsServerOptions['readinessChecks'],
  logger: Logger,
  requestId: string,
) {
  const results = await Promise.all(
    Object.entries(checks).map(async ([name, check]) => {
      try {
        await withTimeout(check(), 2000, 'no answer');
        return [name, 'ok'] as const;
      } catch (error) {
        logger.warn({ err: error, check: name, requestId }, 'readiness check failed');
        return [name, 'failed'] as const;
      }
    }),
  );
  const ready = results.every(([, result]) => result === 'ok');
  sendJson(response, ready ? 200 : 503, {
    status: ready ? 'ready' : 'not ready',
    checks: Object.fromEntries(results),
  });
}
