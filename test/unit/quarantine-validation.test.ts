/**
 * Under BadRows.QUARANTINE the Producer's and the gateway's validation let a row with a bad
 * value through (the worker quarantines it with the same reason); a batch whose
 * structure is wrong is refused as always. Under BadRows.FAIL nothing changes.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { BadRows, defineTable, InvalidBatchError } from '../../src/index.ts';
import { parseBatchJob, toTableDefinitionInput } from '../../src/queue/batch-contract.ts';
import { WireRowWriter } from '../../src/queue/wire-row-writer.ts';

const table = defineTable({
  schema: 's',
  name: 't',
  columns: [
    { name: 'id', type: 'integer', primaryKey: true },
    { name: 'label', type: 'text', nullable: false },
  ],
});

const job = (rows: unknown[], badRows?: string) => ({
  version: 1,
  tables: [toTableDefinitionInput(table)],
  highWatermark: null,
  rows,
  ...(badRows ? { options: { badRows } } : {}),
});

describe('validation under BadRows.QUARANTINE', () => {
  it('a job with a bad value is refused under FAIL and let through under QUARANTINE, the value unchanged', () => {
    const rows = [['s.t', ['abc', 'x']]];
    assert.throws(() => parseBatchJob(job(rows)), InvalidBatchError);
    const { job: parsed } = parseBatchJob(job(rows, BadRows.QUARANTINE));
    assert.deepEqual(parsed.rows, rows);
    assert.equal(parsed.options.maxBadRows, 1000);
  });

  it('a job whose structure is wrong is refused under QUARANTINE too: unknown table, wrong number of values', () => {
    assert.throws(
      () => parseBatchJob(job([['s.other', [1, 'x']]], BadRows.QUARANTINE)),
      /not one of the batch's tables/,
    );
    assert.throws(
      () => parseBatchJob(job([['s.t', [1]]], BadRows.QUARANTINE)),
      /has 1 values; the table has 2 columns/,
    );
  });

  it('the Producer writes a bad value as it is under QUARANTINE, and refuses it under FAIL', () => {
    assert.equal(
      new WireRowWriter(table, true).write([{ a: 1 }, null], 'Batch 1', 1),
      '["s.t",[{"a":1},null]]',
    );
    assert.throws(() => new WireRowWriter(table).write([{ a: 1 }, null], 'Batch 1', 1), InvalidBatchError);
  });

  it('the Producer keeps the reason validation gives for a row it lets through (listed in the header for the worker)', () => {
    const writer = new WireRowWriter(table, true);
    writer.write([1, null], 'Batch 1', 1);
    const problem = writer.problem;
    assert.equal(problem, 'column "label" (text): is null, but the column is NOT NULL');
    assert.throws(
      () => new WireRowWriter(table).write([1, null], 'Batch 1', 1),
      (e: Error) => e.message.endsWith(problem ?? '?'),
    );
    writer.write([1, 'ok'], 'Batch 1', 2);
    assert.equal(writer.problem, undefined);
  });
});
