/** Settings are validated at start-up with messages that say where and what, and never show a secret. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { connectionConfigSchema, parseConfig } from '../../src/ops/config.ts';

describe('configuration errors', () => {
  const sources = { databaseUrl: '--database-url / DATABASE_URL', prefix: '--prefix / PGBI_PREFIX' };

  it('name the setting and where it came from, with the value it got', () => {
    assert.throws(
      () => parseConfig(connectionConfigSchema, { prefix: 'a{b}' }, sources),
      (e: Error & { code?: string }) =>
        e.code === 'INVALID_CONFIG' &&
        /--prefix \/ PGBI_PREFIX: no "\{" or "\}".*got "a\{b\}"/.test(e.message),
    );
  });

  it('regression: mask the password of a URL they quote', () => {
    assert.throws(
      () => parseConfig(connectionConfigSchema, { databaseUrl: 'mysql://app:s3cret@db/x' }, sources),
      (e: Error) => /got "mysql:\/\/app:\*\*\*@db\/x"/.test(e.message) && !e.message.includes('s3cret'),
    );
  });
});
