/**
 * An in-process gateway, run as the `gateway` command runs one, on 127.0.0.1 (a free port), for
 * tests that send it requests: the test database and Redis, the test's queue, GATEWAY_TOKEN as
 * its bearer token; `settings` (the command's, e.g. `maxBodyBytes`) on top.
 */
import type { Logger } from 'pino';
import { pino } from 'pino';
import { gatewayConfigSchema, runGateway } from '../../src/ops/cli/gateway-command.ts';
import { DATABASE_URL } from './pg.ts';
import { REDIS_URL } from './queue.ts';

export const GATEWAY_TOKEN = 'test-token-0123456789abcdef';

export interface TestGateway {
  /** `http://127.0.0.1:<port>`. */
  readonly base: string;
  close(): Promise<void>;
}

export async function startTestGateway(
  names: { queueName: string; prefix: string },
  settings: Readonly<Record<string, unknown>> = {},
  logger: Logger = pino({ level: 'silent' }),
): Promise<TestGateway> {
  const config = gatewayConfigSchema.parse({
    databaseUrl: DATABASE_URL,
    redisUrl: REDIS_URL,
    ...names,
    port: 0,
    host: '127.0.0.1',
    token: GATEWAY_TOKEN,
    ...settings,
  });
  const gateway = await runGateway(config, { logger });
  return { base: `http://127.0.0.1:${gateway.server.port}`, close: () => gateway.close() };
}
