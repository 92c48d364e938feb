/**
 * The small HTTP server every process (worker, gateway) runs: `/metrics` for Prometheus,
 * `/healthz` (the process is up), `/readyz` (PostgreSQL and Redis answer), plus any routes the
 * process adds (the gateway's). Plain node:http: there are only a handful of routes.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Registry } from 'prom-client';
import { stringifyJson } from '../ingest/exact-json.ts';

export type RouteHandler = (
  request: IncomingMessage,
  response: ServerResponse,
  params: Record<string, string>,
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
}

export interface OpsServer {
  readonly server: Server;
  /** The port really listened on (useful with port 0). */
  readonly port: number;
  close(): Promise<void>;
}

export async function startOpsServer(options: OpsServerOptions): Promise<OpsServer> {
  const routes: Route[] = [
    { method: 'GET', path: '/metrics', handler: (_q, res) => sendMetrics(res, options.registry) },
    { method: 'GET', path: '/healthz', handler: async (_q, res) => sendJson(res, 200, { status: 'ok' }) },
    { method: 'GET', path: '/readyz', handler: (_q, res) => sendReadiness(res, options.readinessChecks) },
    ...(options.routes ?? []),
  ];
  const server = createServer((request, response) => {
    dispatch(routes, request, response).catch((error: unknown) => {
      if (!response.headersSent)
        sendJson(response, 500, { error: error instanceof Error ? error.message : String(error) });
      else response.destroy();
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port, options.host ?? '0.0.0.0', () => resolve());
  });
  return {
    server,
    port: (server.address() as AddressInfo).port,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}

async function dispatch(routes: readonly Route[], request: IncomingMessage, response: ServerResponse) {
  const path = new URL(request.url ?? '/', 'http://localhost').pathname;
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
    if (route.method === request.method) return route.handler(request, response, params);
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

async function sendReadiness(response: ServerResponse, checks: OpsServerOptions['readinessChecks']) {
  const results = await Promise.all(
    Object.entries(checks).map(async ([name, check]) => {
      try {
        await withTimeout(check(), 2000);
        return [name, 'ok'] as const;
      } catch (error) {
        return [name, error instanceof Error ? error.message : String(error)] as const;
      }
    }),
  );
  const ready = results.every(([, result]) => result === 'ok');
  sendJson(response, ready ? 200 : 503, {
    status: ready ? 'ready' : 'not ready',
    checks: Object.fromEntries(results),
  });
}

function withTimeout<T>(promise: Promise<T>, ms: number): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no answer within ${ms} ms`)), ms);
    promise.then(
      (value) => {
        clearTimeout(timer);
        resolve(value);
      },
      (error: unknown) => {
        clearTimeout(timer);
        reject(error);
      },
    );
  });
}
