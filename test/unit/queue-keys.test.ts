/** The key space: no two streams, batch ids or tables ever share storage (queue-keys.ts). */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { tableKey } from '../../src/queue/batch-contract.ts';
import { isPoison } from '../../src/queue/failures.ts';
import { bullmqPrefix, checkPrefix, keyPart, QueueKeys } from '../../src/queue/queue-keys.ts';

describe('queue keys', () => {
  const keys = new QueueKeys('p');

  it('regression: a stream named like another stream\'s batch key ("S:batch:2") gets keys of its own', () => {
    const all = new Set([
      keys.stream('S').batch(2),
      keys.stream('S').state,
      keys.stream('S:batch:2').state,
      keys.stream('S:batch').batch(2),
    ]);
    assert.equal(all.size, 4);
  });

  it('regression: the same batchId in two streams is two keys (parts and idempotency)', () => {
    assert.notEqual(keys.stream('a').batchId('2024-05-01'), keys.stream('b').batchId('2024-05-01'));
    assert.notEqual(keys.stream('a').part('u', 0), keys.stream('b').part('u', 0));
  });

  it('encodes names injectively, braces included, so every key of a stream has one hash tag', () => {
    const names = ['a', 'a:b', 'a%3Ab', '{x}', '}', 'a\u0000b', 'ü🙂', '%', 'a\nb'];
    assert.equal(new Set(names.map(keyPart)).size, names.length);
    for (const name of names) {
      const state = keys.stream(name).state;
      const tag = state.slice(state.indexOf('{') + 1, state.indexOf('}'));
      assert.equal(tag, keyPart(name));
      assert.equal(keys.stream(name).batch(1).includes(`{${tag}}`), true);
    }
  });

  it('refuses a prefix with braces; BullMQ gets a hash-tagged prefix', () => {
    assert.throws(() => checkPrefix('a{b'), { code: 'INVALID_CONFIG' });
    assert.throws(() => checkPrefix(''), { code: 'INVALID_CONFIG' });
    assert.equal(bullmqPrefix('pgbi'), '{pgbi}');
  });

  it('regression: "S.x"."t" and "S"."x.t" have different table keys (rows, streams, locks)', () => {
    assert.notEqual(tableKey({ schema: 'S.x', name: 't' }), tableKey({ schema: 'S', name: 'x.t' }));
    assert.equal(tableKey({ schema: 'shop', name: 'orders' }), 'shop.orders');
    assert.equal(tableKey({ schema: 'a"b', name: 'c' }), '"a""b"."c"');
  });
});

describe('failure classes', () => {
  const pgError = (code: string, extra: Record<string, unknown> = {}) =>
    Object.assign(new Error(`sqlstate ${code}`), { code, severity: 'ERROR', ...extra });

  it('retries only what is known to be transient', () => {
    for (const transient of [
      pgError('40001'),
      pgError('40P01'),
      pgError('55P03'),
      pgError('57P01'),
      pgError('08006'),
      pgError('23505', { constraint: 'pg_namespace_nspname_index' }),
      Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:5432'), { code: 'ECONNREFUSED' }),
      new Error('Connection terminated unexpectedly'),
      new Error('Command timed out'),
    ])
      assert.equal(isPoison(transient), false, transient.message);
  });

  it('parks everything else, known or not (bad data, constraints, bugs, stack overflows)', () => {
    for (const poison of [
      pgError('22P02'),
      pgError('23505', { constraint: 't_pkey' }),
      pgError('23502'),
      pgError('42P01'),
      new RangeError('Maximum call stack size exceeded'),
      new TypeError("Cannot read properties of undefined (reading 'x')"),
      'a string thrown',
    ])
      assert.equal(isPoison(poison), true, String(poison));
  });
});
