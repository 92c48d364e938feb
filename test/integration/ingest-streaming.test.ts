/**
 * ingest() streaming against a real PostgreSQL: rows go through COPY ... FROM STDIN while the
 * source is still being read, memory stays bounded, and the rows of several tables, interleaved,
 * each land in their table with at most maxRowsPerTableBuffer of them held in memory.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type pg from 'pg';
import { type IngestTable, ingest, type Row } from '../../src/index.ts';
import {
  backendPid,
  batchesOf,
  copyInProgress,
  rowsOf,
  selectAll,
  tableOid,
  withSchema,
} from '../helpers/ingest.ts';
import { keyedTable as keyed, plainTable as plain } from '../helpers/tables.ts';
import { waitUntil } from '../helpers/wait.ts';

async function count(client: pg.ClientBase, table: IngestTable): Promise<number> {
  const { rows } = await client.query(`SELECT count(*)::int AS n FROM "${table.schema}"."${table.name}"`);
  return rows[0].n;
}

describe('ingest(): COPY, streamed, memory bounded', () => {
  /** Rows from an async generator that, at row `at`, looks at the COPY the ingest session runs. */
  async function copySeenMidway(
    table: IngestTable,
    f: { client: pg.Client; observer: pg.Client },
    total: number,
    at: number,
  ) {
    const pid = await backendPid(f.client);
    let seen: Awaited<ReturnType<typeof copyInProgress>>;
    async function* rows(): AsyncGenerator<Row> {
      for (let i = 1; i <= total; i++) {
        if (i === at)
          seen = await waitUntil(
            'the COPY to have received rows',
            async () => {
              const copy = await copyInProgress(f.observer, pid);
              return (copy?.tuples ?? 0) > 0 ? copy : undefined;
            },
            { timeoutMs: 3000, intervalMs: 20 },
          );
        yield [table, [i, `row ${i}\twith a tab\nand a newline`]];
      }
    }
    await ingest(f.client, [table], batchesOf(['1', null, rows()]));
    return seen;
  }

  it('streams rows into COPY ... FROM STDIN of the table while the source is still being read', () =>
    withSchema('basics', async (f) => {
      const table = plain(f.schema);
      await ingest(f.client, [table], batchesOf());
      const seen = await copySeenMidway(table, f, 200_000, 100_000);
      assert.equal(seen?.command, 'COPY FROM');
      assert.equal(seen?.type, 'PIPE', 'FROM STDIN');
      assert.equal(seen?.relid, await tableOid(f.observer, f.schema, 'plain'));
      assert.ok(
        (seen?.tuples ?? 0) > 0 && (seen?.tuples ?? 0) < 100_000,
        `rows arrive while read: ${seen?.tuples}`,
      );
      const { rows } = await f.observer.query(
        `SELECT count(*)::int AS n, max(value) FILTER (WHERE id = 7) AS v FROM "${f.schema}".plain`,
      );
      assert.deepEqual(rows[0], { n: 200_000, v: 'row 7\twith a tab\nand a newline' });
    }));

  it('streams upserted rows into COPY ... FROM STDIN of a staging table', () =>
    withSchema('basics', async (f) => {
      const table = keyed(f.schema);
      await ingest(f.client, [table], batchesOf());
      const seen = await copySeenMidway(table, f, 50_000, 40_000);
      assert.equal(seen?.command, 'COPY FROM');
      assert.equal(seen?.type, 'PIPE');
      assert.notEqual(seen?.relid, await tableOid(f.observer, f.schema, 'keyed'), 'not the target itself');
      assert.ok((seen?.tuples ?? 0) > 0);
      assert.equal(await count(f.observer, table), 50_000);
    }));

  it('keeps memory bounded: 300 MB of rows from a generator in one batch', () =>
    withSchema('basics', async ({ schema, client, observer }) => {
      const table = plain(schema);
      await ingest(client, [table], batchesOf());
      const ROWS = 300_000;
      const filler = 'x'.repeat(1000);
      const before = process.memoryUsage().rss;
      let peak = before;
      function* rows(): Generator<Row> {
        for (let i = 1; i <= ROWS; i++) {
          if (i % 5000 === 0) peak = Math.max(peak, process.memoryUsage().rss);
          yield [table, [i, `${i}${filler}`]]; // a new ~1 KB string per row: 300 MB in all
        }
      }
      await ingest(client, [table], batchesOf(['1', null, rows()]));
      const growthMb = (peak - before) / 2 ** 20;
      assert.ok(growthMb < 150, `RSS grew by ${growthMb.toFixed(0)} MB while 300 MB went through`);
      const { rows: stats } = await observer.query(
        `SELECT count(*)::int AS n, sum(length(value))::bigint AS chars FROM "${schema}".plain`,
      );
      assert.equal(stats[0].n, ROWS);
      assert.ok(Number(stats[0].chars) > 300_000_000);
    }));
});

describe('ingest(): several tables', () => {
  it('skips rows for tables not passed to ingest(), and does not create or touch them', () =>
    withSchema('basics', async ({ schema, client, observer }) => {
      const [a, other, absent] = [plain(schema, 'a'), plain(schema, 'other'), plain(schema, 'absent')];
      await ingest(client, [other], batchesOf(['1', null, rowsOf(other, [1, 'kept'])]));
      const rows: Row[] = [
        [other, [2, 'x']],
        [a, [1, 'a']],
        [absent, [1, 'x']],
        [a, [2, 'b']],
        [other, [3, 'y']],
      ];
      await ingest(client, [a], batchesOf(['1', null, rows]));
      assert.deepEqual(await selectAll(observer, schema, 'a'), [
        { id: 1, value: 'a' },
        { id: 2, value: 'b' },
      ]);
      assert.deepEqual(await selectAll(observer, schema, 'other'), [{ id: 1, value: 'kept' }]);
      assert.equal(await tableOid(observer, schema, 'absent'), null);
    }));

  for (const maxRowsPerTableBuffer of [undefined, 3, 1]) {
    it(`lands interleaved rows of three tables (maxRowsPerTableBuffer: ${maxRowsPerTableBuffer ?? 'default'})`, () =>
      withSchema('basics', async ({ schema, client, observer }) => {
        const tables = [keyed(schema, 't0'), plain(schema, 't1'), keyed(schema, 't2')];
        // 20 rows, irregularly interleaved, with runs longer than the buffer.
        const pattern = [0, 1, 2, 1, 1, 1, 1, 0, 2, 2, 2, 2, 2, 0, 1, 0, 0, 0, 0, 2];
        const rows: Row[] = pattern.map((t, i) => [tables[t] as IngestTable, [i, `v${i}`]]);
        const options = maxRowsPerTableBuffer ? { maxRowsPerTableBuffer } : {};
        await ingest(client, tables, batchesOf(['1', null, rows], ['2', null, rows.slice(0, 5)]), options);
        for (const [t, table] of tables.entries()) {
          const expected = pattern.flatMap((p, i) => (p === t ? [{ id: i, value: `v${i}` }] : []));
          // Batch 2 repeats rows 0-4: upserted into the keyed tables, appended to the plain one.
          if (t === 1) expected.push(...expected.filter((r) => r.id < 5));
          const actual = (await selectAll(observer, schema, table.name)).sort(
            (x, y) => Number(x.id) - Number(y.id),
          );
          assert.deepEqual(
            actual,
            expected.sort((x, y) => x.id - y.id),
            table.name,
          );
        }
      }));
  }

  it('never buffers more than maxRowsPerTableBuffer rows of a table: a full buffer starts its COPY', () =>
    withSchema('basics', async ({ schema, client, observer }) => {
      const [a, b] = [plain(schema, 'a'), plain(schema, 'b')];
      await ingest(client, [a, b], batchesOf());
      const pid = await backendPid(client);
      const names = new Map([
        [await tableOid(observer, schema, 'a'), 'a'],
        [await tableOid(observer, schema, 'b'), 'b'],
      ]);
      /** Which table's COPY is open once a's COPY started and three rows of b followed. */
      const copyingInto = async (maxRowsPerTableBuffer: number) => {
        let relid: number | undefined;
        async function* rows(): AsyncGenerator<Row> {
          yield [a, [1, 'a']];
          for (let i = 1; i <= 3; i++) yield [b, [i, 'b']];
          // With room in the buffer, the COPY into b never starts: then the last one seen is a's.
          let copy: Awaited<ReturnType<typeof copyInProgress>>;
          await waitUntil(
            'a COPY into b',
            async () => {
              copy = await copyInProgress(observer, pid);
              return names.get(copy?.relid ?? 0) === 'b';
            },
            { timeoutMs: 1000, intervalMs: 20 },
          ).catch(() => undefined);
          relid = copy?.relid;
          yield [a, [2, 'a']];
        }
        await ingest(client, [a, b], batchesOf(['1', null, rows()]), { maxRowsPerTableBuffer });
        return names.get(relid ?? 0);
      };
      assert.equal(await copyingInto(3), 'b', 'a full buffer of b ends the COPY of a and starts one for b');
      assert.equal(await copyingInto(10_000), 'a', 'with room in the buffer, the COPY of a stays open');
      assert.equal(await count(observer, a), 4);
      assert.equal(await count(observer, b), 6);
    }));
});
