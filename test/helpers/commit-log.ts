/**
 * A commit log: a row trigger that records in which transaction, and when, each batch (by a
 * marker column) was written, so a test sees the order in which batches really committed, and
 * checks it against sequence order, coalesced transactions included.
 */
import assert from 'node:assert/strict';
import type pg from 'pg';

/**
 * A commit log on `schema.table`: a row trigger records, once per marker value, the time its
 * transaction wrote it. Batches of one stream carry distinct markers, so reading the log by time
 * gives the order in which batches were applied (each transaction only starts writing once the
 * previous batch of its stream has committed, so this is also commit order).
 */
export async function addCommitLog(
  db: pg.ClientBase,
  schema: string,
  table: string,
  markerColumn = 'marker',
): Promise<void> {
  const s = `"${schema}"`;
  await db.query(`
    CREATE TABLE IF NOT EXISTS ${s}.commit_log (tbl text NOT NULL, marker bigint NOT NULL, txid bigint NOT NULL,
                                               at timestamptz NOT NULL, PRIMARY KEY (tbl, marker));
    CREATE OR REPLACE FUNCTION ${s}.log_commit() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
      INSERT INTO ${s}.commit_log VALUES (TG_TABLE_NAME, (to_jsonb(NEW) ->> TG_ARGV[0])::bigint, txid_current(), clock_timestamp())
      ON CONFLICT DO NOTHING;
      RETURN NULL;
    END $$;
    CREATE TRIGGER log_commit AFTER INSERT OR UPDATE ON ${s}."${table}" FOR EACH ROW EXECUTE FUNCTION ${s}.log_commit('${markerColumn}');`);
}

/** Markers of `table` in the order their transactions wrote them, with one txid per marker. */
export async function commitOrder(
  db: pg.ClientBase,
  schema: string,
  table: string,
): Promise<{ marker: number; txid: string }[]> {
  const { rows } = await db.query<{ marker: string; txid: string }>(
    `SELECT marker, txid FROM "${schema}".commit_log WHERE tbl = $1 ORDER BY at, marker`,
    [table],
  );
  return rows.map((r) => ({ marker: Number(r.marker), txid: r.txid }));
}

/**
 * Checks a commit log against sequence order when batches may be coalesced: each transaction
 * (txid) holds a contiguous range of seqs, the transactions' ranges follow each other in commit
 * order without overlap, and together they cover 1..total (a batch whose rows were all
 * overwritten later in its own transaction leaves no marker, but lies inside its range).
 * Returns the number of transactions.
 */
export function assertCommitOrder(
  order: readonly { marker: number; txid: string }[],
  seqOfMarker: ReadonlyMap<number, number>,
  total: number,
): number {
  const ranges: { txid: string; min: number; max: number }[] = [];
  for (const { marker, txid } of order) {
    const seq = seqOfMarker.get(marker) as number;
    const last = ranges[ranges.length - 1];
    if (last?.txid === txid) {
      last.min = Math.min(last.min, seq);
      last.max = Math.max(last.max, seq);
    } else {
      assert.ok(
        !ranges.some((r) => r.txid === txid),
        `transaction ${txid} wrote before and after another one`,
      );
      ranges.push({ txid, min: seq, max: seq });
    }
  }
  let covered = 0;
  for (const r of ranges) {
    assert.ok(r.min > covered, `batches ${r.min}-${r.max} committed after batch ${covered}: out of order`);
    covered = r.max;
  }
  assert.equal(covered, total, 'not every batch was committed');
  return ranges.length;
}
