/**
 * ingest()'s options as one zod schema (src/ingest/options-schema.ts): every default filled in,
 * and every wrong option refused with INVALID_OPTIONS, naming the option, what it must be and
 * what it was.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { pino } from 'pino';
import { type IngestLogger, PgBulkIngestError } from '../../src/index.ts';
import { resolveOptions } from '../../src/ingest/options-schema.ts';

function refusal(options: unknown): PgBulkIngestError {
  try {
    resolveOptions(options as never);
  } catch (error) {
    assert.ok(error instanceof PgBulkIngestError, String(error));
    assert.equal(error.code, 'INVALID_OPTIONS');
    return error;
  }
  throw new Error(`Expected ${JSON.stringify(options)} to be refused`);
}

describe('ingest() options', () => {
  it('fill in every default', () => {
    const { onBeforeVisible, logger, ...resolved } = resolveOptions({});
    assert.deepEqual(resolved, {
      highWatermark: '__LATEST__',
      visibility: '__AFTER_EACH_BATCH__',
      upsert: '__IF_PRIMARY_KEY__',
      delete: '__OFF__',
      maxRowsPerTableBuffer: 10_000,
      schemaChanges: '__APPLY__',
      badRows: '__FAIL__',
      maxBadRows: 1000,
      blockingBackends: { cancelAfterMs: 300_000, terminateAfterMs: 310_000, intervalMs: 1000 },
    });
    assert.equal(typeof onBeforeVisible, 'function');
    assert.equal(typeof logger.info, 'function');
    assert.deepEqual(resolveOptions(undefined).blockingBackends, resolved.blockingBackends);
  });

  it('default each delay alone, keep `false`, and take null as the default (as `??` did), but as a high watermark', () => {
    assert.deepEqual(resolveOptions({ blockingBackends: { cancelAfterMs: 5 } }).blockingBackends, {
      cancelAfterMs: 5,
      terminateAfterMs: 310_000,
      intervalMs: 1000,
    });
    assert.equal(resolveOptions({ blockingBackends: false }).blockingBackends, false);
    const nulls = resolveOptions({ upsert: null, maxBadRows: null, highWatermark: null } as never);
    assert.equal(nulls.upsert, '__IF_PRIMARY_KEY__');
    assert.equal(nulls.maxBadRows, 1000);
    assert.equal(nulls.highWatermark, null);
  });

  it('take a pino logger as it is', () => {
    const logger: IngestLogger = pino({ level: 'silent' });
    assert.equal(resolveOptions({ logger }).logger, logger);
  });

  it('refuse each wrong option, naming it, what it must be and what it was', () => {
    const cases: [options: unknown, message: string, path: string][] = [
      [
        { upsert: 'yes' },
        "Expected `upsert` to be one of '__OFF__', '__IF_PRIMARY_KEY__', got `yes`",
        'upsert',
      ],
      [
        { delete: true },
        "Expected `delete` to be one of '__OFF__', '__BEFORE_FIRST_BATCH__', got `true`",
        'delete',
      ],
      [
        { visibility: 'now' },
        "Expected `visibility` to be one of '__AFTER_EACH_BATCH__', got `now`",
        'visibility',
      ],
      [
        { schemaChanges: 'grow' },
        "Expected `schemaChanges` to be one of '__APPLY__', '__ADDITIVE__', '__FREEZE__', got `grow`",
        'schemaChanges',
      ],
      [
        { badRows: 'skip' },
        "Expected `badRows` to be one of '__FAIL__', '__QUARANTINE__', got `skip`",
        'badRows',
      ],
      [{ maxBadRows: -1 }, 'Expected `maxBadRows` to be an integer >= 0, got `-1`', 'maxBadRows'],
      [{ maxBadRows: 1.5 }, 'Expected `maxBadRows` to be an integer >= 0, got `1.5`', 'maxBadRows'],
      [
        { maxRowsPerTableBuffer: 0 },
        'Expected `maxRowsPerTableBuffer` to be an integer >= 1, got `0`',
        'maxRowsPerTableBuffer',
      ],
      [{ onBeforeVisible: 1 }, 'Expected `onBeforeVisible` to be a function, got number', 'onBeforeVisible'],
      [
        { blockingBackends: { cancelAfterMs: Number.NaN } },
        'Expected `blockingBackends.cancelAfterMs` to be a finite number >= 0, got `NaN`',
        'blockingBackends.cancelAfterMs',
      ],
      [
        { blockingBackends: { intervalMs: 0 } },
        'Expected `blockingBackends.intervalMs` to be a finite number >= 1, got `0`',
        'blockingBackends.intervalMs',
      ],
      [
        { blockingBackends: { terminateAfterMs: Number.POSITIVE_INFINITY } },
        'Expected `blockingBackends.terminateAfterMs` to be a finite number >= 0, got `Infinity`',
        'blockingBackends.terminateAfterMs',
      ],
      [
        { blockingBackends: 'yes' },
        'Expected `blockingBackends` to be `false` or an object of delays, got `yes`',
        'blockingBackends',
      ],
      [
        { logger: console.log },
        'Expected `logger` to have `info` and `warn` methods (a pino logger has), got a function',
        'logger',
      ],
      [5, 'Expected `options` to be an object, got `5`', 'options'],
      [
        { visibility: {} },
        "Expected `visibility` to be one of '__AFTER_EACH_BATCH__', got an object",
        'visibility',
      ],
    ];
    for (const [options, message, path] of cases) {
      const error = refusal(options);
      assert.equal(error.message, message);
      assert.equal(error.context.path, path);
    }
  });

  it('name every wrong option at once', () => {
    assert.equal(
      refusal({ maxBadRows: -1, upsert: 'yes' }).message,
      "Expected `upsert` to be one of '__OFF__', '__IF_PRIMARY_KEY__', got `yes`; Expected `maxBadRows` to be an integer >= 0, got `-1`",
    );
  });
});
