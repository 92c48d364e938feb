import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { CopyLinePositions } from '../../src/ingest/copy-line-positions.ts';

describe('COPY line → batch row', () => {
  it('maps consecutive, strided and irregular lines', () => {
    const positions = new CopyLinePositions();
    for (const row of [1, 2, 3, 10, 12, 14, 15, 40]) positions.add(row);
    assert.deepEqual(
      [1, 2, 3, 4, 5, 6, 7, 8].map((line) => positions.batchRowOf(line)),
      [1, 2, 3, 10, 12, 14, 15, 40],
    );
    assert.equal(positions.batchRowOf(9), undefined);
  });

  it('gives up (undefined) rather than grow without bound', () => {
    const positions = new CopyLinePositions();
    let row = 0;
    for (let i = 0; i < 20_000; i++) {
      row += 1 + (i % 3 === 0 ? 5 : i % 7);
      positions.add(row);
    }
    assert.equal(positions.batchRowOf(1), undefined);
  });
});
