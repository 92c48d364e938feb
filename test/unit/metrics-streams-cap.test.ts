/** /metrics stays bounded however many streams there are (worker-metrics.ts streamsToReport). */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { MAX_STREAM_SERIES, streamsToReport } from '../../src/ops/worker-metrics.ts';
import type { StreamInfo } from '../../src/queue/stream-store.ts';

const info = (i: number, extra: Partial<StreamInfo> = {}): StreamInfo => ({
  stream: `s.${i}`,
  enqueuedSeq: 1,
  committedSeq: 1,
  pendingBatches: 0,
  pendingBytes: 0,
  lastHighWatermark: null,
  committedHighWatermark: null,
  committedAt: i,
  blocked: null,
  lastError: null,
  epochs: [],
  ...extra,
});

describe('per-stream series', () => {
  it('are capped, keeping blocked streams first, then the most pending, then the latest commits', () => {
    const streams = Array.from({ length: 20_000 }, (_, i) => info(i));
    streams[5] = info(5, { blocked: { seq: 2, reason: 'bad', at: 0 } });
    streams[6] = info(6, { pendingBatches: 900 });
    const kept = streamsToReport(streams);
    assert.equal(kept.length, MAX_STREAM_SERIES);
    assert.deepEqual(
      kept.slice(0, 2).map((s) => s.stream),
      ['s.5', 's.6'],
    );
    assert.equal(kept[2]?.stream, 's.19999', 'then the most recent commits');
  });

  it('keeps every stream under the cap', () => {
    assert.equal(streamsToReport([info(1), info(2)]).length, 2);
  });
});
