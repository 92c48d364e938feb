/**
 * Pins the ioredis behaviour isRedisTimeout relies on: a command that gets no answer within
 * `commandTimeout` rejects with the message "Command timed out". A Redis that accepts the
 * connection and never answers (a plain TCP server on a free port) stands in for a hung one.
 */
import assert from 'node:assert/strict';
import { createServer, type Socket } from 'node:net';
import { describe, it } from 'node:test';
import { connectRedis, isRedisTimeout } from '../../src/queue/stream-store.ts';

describe('ioredis command timeout', () => {
  it('rejects with the error isRedisTimeout recognises', async () => {
    const sockets: Socket[] = [];
    const server = createServer((socket) => sockets.push(socket)); // reads, never answers
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const port = (server.address() as { port: number }).port;
    const redis = connectRedis({ host: '127.0.0.1', port, enableReadyCheck: false, lazyConnect: false }, 200);
    try {
      const error = await redis.get('anything').then(
        () => assert.fail('a server that never answers answered'),
        (e: unknown) => e,
      );
      assert.equal(isRedisTimeout(error), true, String(error));
      assert.equal(isRedisTimeout(new Error('Connection is closed.')), false);
    } finally {
      redis.disconnect();
      for (const socket of sockets) socket.destroy();
      server.close();
    }
  });
});
