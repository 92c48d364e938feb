import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { TableDefinitionError } from '../../src/errors.ts';
import { parsePgType } from '../../src/ingest/pg-type.ts';
import { defineTable } from '../../src/ingest/table-definition.ts';

const base = { schema: 'my_schema', name: 'my_table' };

function expectError(definition: unknown, pattern: RegExp) {
  assert.throws(
    () => defineTable(definition as Parameters<typeof defineTable>[0]),
    (error: unknown) =>
      error instanceof TableDefinitionError &&
      error.code === 'INVALID_TABLE_DEFINITION' &&
      pattern.test(error.message),
  );
}

describe('defineTable', () => {
  it('returns plain, frozen schema, name and columns with defaults applied', () => {
    const table = defineTable({
      ...base,
      columns: [
        { name: 'id', type: 'integer', primaryKey: true },
        { name: 'value', type: 'varchar(16)', nullable: false, unique: true },
        { name: 'tags', type: 'text[]', index: true },
      ],
      indexes: [{ columns: ['value', 'tags'] }, { columns: ['tags'], using: 'gin' }],
    });
    assert.equal(table.schema, 'my_schema');
    assert.equal(table.name, 'my_table');
    assert.deepEqual(
      table.columns.map((c) => [c.name, c.type, c.nullable]),
      [
        ['id', 'integer', false],
        ['value', 'varchar(16)', false],
        ['tags', 'text[]', true],
      ],
    );
    assert.deepEqual(table.primaryKey, ['id']);
    assert.equal(table.indexes.length, 4);
    assert.ok(Object.isFrozen(table) && Object.isFrozen(table.columns));
  });

  it('refuses a type string that is not a PostgreSQL type, naming the table and field', () => {
    expectError(
      { ...base, columns: [{ name: 'a', type: 'integer); DROP TABLE x; --' }] },
      /"my_schema"\."my_table": columns\[0\]\.type/,
    );
    expectError(
      { ...base, columns: [{ name: 'a', type: 'integer; DROP TABLE x' }] },
      /not a PostgreSQL type/,
    );
    expectError({ ...base, columns: [{ name: 'a', type: 'strnig' }] }, /unknown base type "strnig"/);
    expectError({ ...base, columns: [{ name: 'a', type: 'integer(4)' }] }, /takes at most 0/);
  });

  it('refuses duplicate columns, indexes on missing columns, empty column lists and unknown keys', () => {
    expectError(
      {
        ...base,
        columns: [
          { name: 'a', type: 'text' },
          { name: 'a', type: 'text' },
        ],
      },
      /columns\[1\]\.name: duplicate column "a"/,
    );
    expectError(
      { ...base, columns: [{ name: 'a', type: 'text' }], indexes: [{ columns: ['b'] }] },
      /indexes\[0\]\.columns\[0\]: names missing column "b"/,
    );
    expectError({ ...base, columns: [] }, /columns: must have at least one column/);
    expectError({ ...base, columns: [{ name: 'a', type: 'text', primarykey: true }] }, /columns\[0\]/);
    expectError({ ...base, columns: [{ name: 'x'.repeat(64), type: 'text' }] }, /at most 63 bytes/);
  });

  it('accepts the documented column types', () => {
    for (const type of [
      'integer',
      'bigint',
      'varchar(16)',
      'text',
      'date',
      'timestamp',
      'timestamptz',
      'numeric(12,2)',
      'boolean',
      'uuid',
      'json',
      'jsonb',
      'bytea',
      'integer[]',
      'text[]',
      'timestamp(3) with time zone',
      'double precision',
      'character varying(5)[]',
    ]) {
      assert.ok(!('error' in parsePgType(type)), type);
    }
  });
});
