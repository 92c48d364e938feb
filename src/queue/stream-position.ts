/**
 * Where a stream stands: which batch comes next, given what PostgreSQL committed (the truth for
 * what is applied) and what Redis holds (the truth for what is enqueued). A pure function, so
 * every case below has a unit test (test/unit/stream-position.test.ts).
 *
 * Redis numbers a stream's batches; a Redis that lost writes (restarted without AOF, or with
 * `appendfsync everysec`) numbers again from what it remembers. So PostgreSQL stores each commit
 * as (epoch, seq), and Redis lists its epochs with the seq each one continues from
 * (redis-scripts.ts). Seqs of epoch k are (from_k, from_k+1]. Cases:
 *
 * - PostgreSQL's epoch is Redis's last one (or Redis continued it): apply committed + 1.
 * - PostgreSQL's epoch is an earlier one of Redis's list: finish it (its seqs up to the next
 *   epoch's `from`), then go on with the next epoch at from + 1. If PostgreSQL committed past
 *   that `from`, Redis had forgotten batches it once held: a gap, reported.
 * - Redis does not know PostgreSQL's epoch at all (it lost the stream, e.g. restarted empty):
 *   start at Redis's first epoch and report the gap.
 *
 * In every case the batches Redis acknowledged after its loss are applied, never taken for
 * batches PostgreSQL already committed under the same numbers.
 */

/** [epoch id, the seq the epoch continues from]. */
export type Epoch = readonly [id: string, from: number];

export interface CommittedPosition {
  readonly epoch: string | null;
  readonly seq: number;
}

/** Redis lost batches or commits of the stream: what PostgreSQL had, and where Redis resumed. */
export interface RedisGap {
  readonly committedEpoch: string | null;
  readonly committedSeq: number;
  readonly resumedEpoch: string;
  readonly resumedFrom: number;
}

export interface NextBatch {
  /** The next seq to apply (in Redis's numbering). */
  readonly seq: number;
  /** The epoch it belongs to, recorded in PostgreSQL with it. */
  readonly epoch: string;
  /** What counts as committed in Redis's numbering (for its mirror). */
  readonly committedInRedis: number;
  readonly gap: RedisGap | null;
}

export function nextBatch(committed: CommittedPosition, epochs: readonly Epoch[]): NextBatch | null {
  const first = epochs[0];
  if (first === undefined) return null; // Redis has never seen the stream
  const index = committed.epoch === null ? -1 : epochs.findIndex(([id]) => id === committed.epoch);
  if (index === -1) {
    // A stream new to PostgreSQL, or one whose epoch Redis has lost.
    const lost = committed.seq > 0 || committed.epoch !== null;
    return at(epochs, 0, first[1], lost ? gap(committed, first) : null);
  }
  const following = epochs[index + 1];
  if (following === undefined || committed.seq < following[1]) return at(epochs, index, committed.seq, null);
  // PostgreSQL's epoch is finished; committed beyond its end means Redis had forgotten commits.
  return at(epochs, index + 1, following[1], committed.seq > following[1] ? gap(committed, following) : null);
}

/** The batch after `committedInRedis`, in epoch `index` or, if that epoch is empty, a later one. */
function at(epochs: readonly Epoch[], index: number, committedInRedis: number, gapFound: RedisGap | null) {
  let i = index;
  // An epoch that got no batch ends where it started (the next one continues from the same seq).
  while (epochs[i + 1] !== undefined && (epochs[i + 1] as Epoch)[1] <= committedInRedis) i += 1;
  return { seq: committedInRedis + 1, epoch: (epochs[i] as Epoch)[0], committedInRedis, gap: gapFound };
}

function gap(committed: CommittedPosition, resumed: Epoch): RedisGap {
  return {
    committedEpoch: committed.epoch,
    committedSeq: committed.seq,
    resumedEpoch: resumed[0],
    resumedFrom: resumed[1],
  };
}

export function describeGap(stream: string, g: RedisGap): string {
  return `Stream ${stream}: Redis lost data. PostgreSQL had committed batch ${g.committedSeq}${g.committedEpoch ? ` (epoch ${g.committedEpoch})` : ''}; Redis resumed numbering after batch ${g.resumedFrom} (epoch ${g.resumedEpoch}). Batches acknowledged before the loss and not yet committed may be lost; batches acknowledged after it are applied.`;
}
