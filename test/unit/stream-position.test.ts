/** Which batch comes next, from PostgreSQL's (epoch, seq) and Redis's epochs (stream-position.ts). */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { nextBatch } from '../../src/queue/stream-position.ts';

describe('stream position', () => {
  it('is nothing when Redis never saw the stream', () => {
    assert.equal(nextBatch({ epoch: null, seq: 0 }, []), null);
  });

  it('starts a new stream at 1, with no gap', () => {
    assert.deepEqual(nextBatch({ epoch: null, seq: 0 }, [['a', 0]]), {
      seq: 1,
      epoch: 'a',
      committedInRedis: 0,
      gap: null,
    });
  });

  it('goes on at committed + 1 within an epoch', () => {
    assert.deepEqual(nextBatch({ epoch: 'a', seq: 7 }, [['a', 0]]), {
      seq: 8,
      epoch: 'a',
      committedInRedis: 7,
      gap: null,
    });
  });

  it('finishes the old epoch first when Redis restarted without losing anything', () => {
    const epochs = [['a', 0] as const, ['b', 10] as const];
    assert.equal(nextBatch({ epoch: 'a', seq: 8 }, epochs)?.epoch, 'a');
    assert.deepEqual(nextBatch({ epoch: 'a', seq: 10 }, epochs), {
      seq: 11,
      epoch: 'b',
      committedInRedis: 10,
      gap: null,
    });
  });

  it('regression: Redis that lost commits numbers again from 4; those batches are applied, and the gap reported', () => {
    // PostgreSQL committed up to 8 in epoch a; Redis restarted remembering only 3 and went on from there.
    const next = nextBatch({ epoch: 'a', seq: 8 }, [
      ['a', 0],
      ['b', 3],
    ]);
    assert.equal(next?.seq, 4);
    assert.equal(next?.epoch, 'b');
    assert.deepEqual(next?.gap, { committedEpoch: 'a', committedSeq: 8, resumedEpoch: 'b', resumedFrom: 3 });
  });

  it('regression: Redis restarted empty: its batches 1, 2, ... are applied, and the gap reported', () => {
    const next = nextBatch({ epoch: 'a', seq: 50 }, [['c', 0]]);
    assert.equal(next?.seq, 1);
    assert.equal(next?.epoch, 'c');
    assert.equal(next?.gap?.committedSeq, 50);
  });

  it('skips epochs that got no batch', () => {
    const next = nextBatch({ epoch: 'a', seq: 5 }, [
      ['a', 0],
      ['b', 5],
      ['c', 5],
    ]);
    assert.deepEqual(next, { seq: 6, epoch: 'c', committedInRedis: 5, gap: null });
  });
});
