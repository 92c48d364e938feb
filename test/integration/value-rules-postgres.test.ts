/**
 * The value rules' cases (test/helpers/value-cases.ts) checked against PostgreSQL itself: each
 * value is inserted into a column of its type as COPY would be given it (json as JSON text), and
 * PostgreSQL must take the ones marked ok and strict and refuse the ones marked bad. So a rule
 * that refuses a value PostgreSQL takes (or the reverse) fails here, not in production.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { withClient } from '../helpers/pg.ts';
import { VALUE_CASES } from '../helpers/value-cases.ts';

/** The value as text for PostgreSQL (node-postgres writes arrays as array literals). */
function asParameter(type: string, value: unknown): unknown {
  if (type === 'json' || type === 'jsonb') return JSON.stringify(value);
  return typeof value === 'number' ? String(value) : value;
}

describe('value rules agree with PostgreSQL', () => {
  for (const [rule, cases] of Object.entries(VALUE_CASES)) {
    it(rule, async () => {
      await withClient(async (client) => {
        const wrong: string[] = [];
        await client.query('BEGIN');
        try {
          for (const [i, [type, value, expect]] of cases.entries()) {
            await client.query(`CREATE TEMP TABLE v${i} (c ${type}) ON COMMIT DROP`);
            await client.query('SAVEPOINT v');
            let error: string | undefined;
            try {
              await client.query(`INSERT INTO v${i} (c) VALUES ($1)`, [asParameter(type, value)]);
            } catch (e) {
              error = (e as Error).message;
              await client.query('ROLLBACK TO SAVEPOINT v');
            }
            const taken = error === undefined;
            if (taken !== (expect !== 'bad'))
              wrong.push(
                `${type} ${JSON.stringify(value)?.slice(0, 60)}: marked ${expect}, PostgreSQL ${error ?? 'took it'}`,
              );
          }
        } finally {
          await client.query('ROLLBACK');
        }
        assert.deepEqual(wrong, []);
      });
    });
  }
});
