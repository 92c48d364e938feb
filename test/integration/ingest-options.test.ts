/**
 * ingest()'s options against a real PostgreSQL: a wrong one is refused at the call, before any
 * SQL (not in the middle of the first migration, where `blockingBackends` used to be checked);
 * and the `logger` option hears each step, a migration with its reasons.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type pg from 'pg';
import { defineTable, type IngestLogger, ingest, PgBulkIngestError } from '../../src/index.ts';
import { batchesOf, rejection, rowsOf, tableOid, withSchema } from '../helpers/ingest.ts';

/** Counts the statements sent on `client` while `fn` runs. */
async function statementsDuring(client: pg.Client, fn: () => Promise<unknown>): Promise<number> {
  const query = client.query;
  let sent = 0;
  client.query = ((...args: Parameters<pg.Client['query']>) => {
    sent += 1;
    return (query as (...a: unknown[]) => unknown).apply(client, args);
  }) as pg.Client['query'];
  try {
    await fn();
  } finally {
    client.query = query;
  }
  return sent;
}

interface LogLine {
  readonly level: 'info' | 'warn';
  readonly details: Record<string, unknown>;
  readonly message: string;
}

function recordingLogger(): IngestLogger & { lines: LogLine[] } {
  const lines: LogLine[] = [];
  return {
    lines,
    info: (details, message) =>
      lines.push({ level: 'info', details: details as LogLine['details'], message }),
    warn: (details, message) =>
      lines.push({ level: 'warn', details: details as LogLine['details'], message }),
  };
}

describe('ingest(): options', () => {
  it('a bad blockingBackends value fails at the call, before any SQL and before batches() is called', () =>
    withSchema('options', async ({ schema, client, observer }) => {
      const table = defineTable({ schema, name: 't', columns: [{ name: 'id', type: 'integer' }] });
      let called = false;
      const batches = () => {
        called = true;
        return [];
      };
      let error: unknown;
      const sent = await statementsDuring(client, async () => {
        error = await rejection(() =>
          ingest(client, [table], batches, { blockingBackends: { cancelAfterMs: Number.NaN } }),
        );
      });
      assert.ok(error instanceof PgBulkIngestError);
      assert.equal(error.code, 'INVALID_OPTIONS');
      assert.equal(
        error.message,
        'Expected `blockingBackends.cancelAfterMs` to be a finite number >= 0, got `NaN`',
      );
      assert.equal(sent, 0);
      assert.equal(called, false);
      assert.equal(await tableOid(observer, schema, 't'), null);
    }));

  it('the logger hears the start, each migration with its differences and reasons, each batch and the end', () =>
    withSchema('options', async ({ schema, client }) => {
      const v1 = defineTable({
        schema,
        name: 't',
        columns: [
          { name: 'id', type: 'integer', primaryKey: true },
          { name: 'n', type: 'integer' },
        ],
      });
      await ingest(client, [v1], batchesOf(['1', null, rowsOf(v1, [1, 1])]));
      // n widened integer → bigint: a rewrite, so a rebuild.
      const v2 = defineTable({
        schema,
        name: 't',
        columns: [
          { name: 'id', type: 'integer', primaryKey: true },
          { name: 'n', type: 'bigint' },
        ],
      });
      const logger = recordingLogger();
      await ingest(client, [v2], batchesOf(['2', null, rowsOf(v2, [2, 2])]), { logger });
      const messages = logger.lines.map((l) => l.message);
      assert.deepEqual(messages, [
        'ingest: starting, batches() called with this high watermark',
        'ingest: replacement table swapped in',
        'ingest: table rebuilt to match its definition, swapped in at the commit',
        'ingest: batch committed',
        'ingest: done',
      ]);
      const [start, swap, rebuilt, committed] = logger.lines as [LogLine, LogLine, LogLine, LogLine];
      assert.deepEqual(start.details, { tables: [`${schema}.t`], highWatermark: '1' });
      assert.equal(swap.details.recreatedViews, 0);
      assert.deepEqual(rebuilt.details.differences, [
        'column "n": integer in the table, bigint in the definition',
      ]);
      assert.deepEqual(rebuilt.details.rebuildReasons, ['integer → bigint rewrites the table']);
      assert.deepEqual(committed.details.rows, { [`${schema}.t`]: 1 });

      // A nullable column added at the end: altered in place, logged when done.
      const v3 = defineTable({
        schema,
        name: 't',
        columns: [
          { name: 'id', type: 'integer', primaryKey: true },
          { name: 'n', type: 'bigint' },
          { name: 'extra', type: 'text' },
        ],
      });
      const inPlace = recordingLogger();
      await ingest(client, [v3], batchesOf(['3', null, rowsOf(v3, [3, 3, 'x'])]), { logger: inPlace });
      const altered = inPlace.lines.find((l) => l.message.includes('altered in place'));
      assert.equal(altered?.details.path, 'in-place');
      assert.deepEqual(altered?.details.differences, [
        'column "extra" text: in the definition, not in the table',
      ]);
    }));
});
