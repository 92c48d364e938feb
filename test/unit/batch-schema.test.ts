import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import { Ajv2020 } from 'ajv/dist/2020.js';
import { batchJobJsonSchema } from '../../src/queue/batch-schema.ts';

const committed = JSON.parse(
  readFileSync(new URL('../../schema/batch.schema.json', import.meta.url), 'utf8'),
);

const valid = {
  version: 1,
  tables: [
    {
      schema: 's',
      name: 't',
      columns: [
        { name: 'id', type: 'bigint', primaryKey: true },
        { name: 'b', type: 'bytea' },
      ],
    },
  ],
  highWatermark: '2024-01-01',
  rows: [['s.t', ['9007199254740993', 'AAEC']]],
};

describe('schema/batch.schema.json', () => {
  it('is the one generated from the zod contract (run `npm run schema` after changing it)', () => {
    assert.deepEqual(committed, batchJobJsonSchema());
  });

  it('accepts a valid batch and refuses an unknown version or a missing field, as the worker does', () => {
    const validate = new Ajv2020({ strict: false }).compile(committed);
    assert.equal(validate(valid), true, JSON.stringify(validate.errors));
    assert.equal(validate({ ...valid, version: 2 }), false);
    const { highWatermark: _dropped, ...missing } = valid;
    assert.equal(validate(missing), false);
    assert.equal(validate({ ...valid, rows: [['s.t', 'not an array']] }), false);
  });
});
