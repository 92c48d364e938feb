/**
 * Every kind of value the library supports (README, docs/batch-format.md), written through COPY and read back from a real
 * PostgreSQL, both through a staging table (upsert) and straight into the table (plain insert).
 * Values are compared as PostgreSQL's own text output where pg's parsing would blur them.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type pg from 'pg';
import { defineTable, type IngestTable, ingest, Upsert } from '../../src/index.ts';
import { batchesOf, rowsOf, withSchema } from '../helpers/ingest.ts';

const TRICKY = [
  '',
  'tab\there',
  'new\nline',
  'carriage\rreturn\r\n',
  'back\\slash \\\\ \\n \\t',
  '\\N',
  'N',
  'NULL',
  '"double" \'single\'',
  '{braces, comma}',
  '🐘 emoji 👩‍👩‍👧 ZWJ',
  'Ünïcödé ñ 中文 العربية e\u0301',
  '\u2028\u2029\u00a0\u200b',
  '\u0001\u001f\u007f',
  'x'.repeat(100_000),
];

/** A table with a key column `id` then `columns`; `keyed` gives the key a primary key (upsert path). */
function tableWith(
  schema: string,
  name: string,
  keyed: boolean,
  columns: { name: string; type: string }[],
): IngestTable {
  return defineTable({
    schema,
    name,
    columns: [{ name: 'id', type: 'integer', primaryKey: keyed }, ...columns],
  });
}

let roundTrips = 0;

/** Writes one row per value into column `v` of a fresh table, and reads `select` of `v` back in order. */
async function roundTrip(
  f: { schema: string; client: pg.Client; observer: pg.Client },
  keyed: boolean,
  type: string,
  values: readonly unknown[],
  select = 'v',
): Promise<unknown[]> {
  roundTrips += 1;
  const name = `t${roundTrips}_${type.replace(/\W+/g, '_')}`;
  const table = tableWith(f.schema, name, keyed, [{ name: 'v', type }]);
  await ingest(f.client, [table], batchesOf(['1', null, rowsOf(table, ...values.map((v, i) => [i, v]))]), {
    upsert: keyed ? Upsert.IF_PRIMARY_KEY : Upsert.OFF,
  });
  const { rows } = await f.observer.query(`SELECT ${select} AS v FROM "${f.schema}"."${name}" ORDER BY id`);
  return rows.map((r) => r.v);
}

const allBytes = Uint8Array.from({ length: 256 }, (_, i) => i);

for (const keyed of [true, false]) {
  describe(`ingest(): value round trips (${keyed ? 'upsert through a staging table' : 'plain insert'})`, () => {
    it('null and undefined are NULL; strings keep tabs, newlines, backslashes, \\N and any Unicode', () =>
      withSchema('values', async (f) => {
        assert.deepEqual(await roundTrip(f, keyed, 'text', [null, undefined, ...TRICKY]), [
          null,
          null,
          ...TRICKY,
        ]);
        assert.deepEqual(
          await roundTrip(f, keyed, 'varchar(16)', ['🐘🐘🐘🐘🐘🐘🐘🐘🐘🐘🐘🐘🐘🐘🐘🐘', 'a\tb']),
          ['🐘🐘🐘🐘🐘🐘🐘🐘🐘🐘🐘🐘🐘🐘🐘🐘', 'a\tb'],
        );
      }));

    it('integers, bigints (JS bigint and strings, to 2^63-1) and numerics (strings and numbers)', () =>
      withSchema('values', async (f) => {
        assert.deepEqual(await roundTrip(f, keyed, 'integer', [0, -2147483648, 2147483647, '12', null]), [
          0,
          -2147483648,
          2147483647,
          12,
          null,
        ]);
        assert.deepEqual(
          await roundTrip(f, keyed, 'bigint', [
            2n ** 63n - 1n,
            -(2n ** 63n),
            '9223372036854775807',
            Number.MAX_SAFE_INTEGER,
            0n,
          ]),
          ['9223372036854775807', '-9223372036854775808', '9223372036854775807', '9007199254740991', '0'],
        );
        assert.deepEqual(
          await roundTrip(f, keyed, 'numeric(12,2)', ['1234567890.12', 3.14, -0.5, '0.005', 1e3, 7n]),
          ['1234567890.12', '3.14', '-0.50', '0.01', '1000.00', '7.00'],
        );
        assert.deepEqual(
          await roundTrip(f, keyed, 'double precision', [0.1, -1.5e300, 5e-324]),
          [0.1, -1.5e300, 5e-324],
        );
      }));

    it('booleans, and uuids', () =>
      withSchema('values', async (f) => {
        assert.deepEqual(await roundTrip(f, keyed, 'boolean', [true, false, null, 'true', 'f']), [
          true,
          false,
          null,
          true,
          false,
        ]);
        const uuid = '123e4567-e89b-12d3-a456-426614174000';
        assert.deepEqual(await roundTrip(f, keyed, 'uuid', [uuid, uuid.toUpperCase(), null]), [
          uuid,
          uuid,
          null,
        ]);
      }));

    it('dates and timestamps, from Date objects and strings', () =>
      withSchema('values', async (f) => {
        await f.observer.query(`SET TIME ZONE 'UTC'`);
        const at = new Date(Date.UTC(2024, 1, 29, 12, 34, 56, 789));
        const early = new Date(Date.UTC(1969, 11, 31, 23, 59, 59, 1));
        assert.deepEqual(
          await roundTrip(f, keyed, 'timestamptz', [at, early, '2024-01-01T00:00:00+02:00', null], 'v::text'),
          ['2024-02-29 12:34:56.789+00', '1969-12-31 23:59:59.001+00', '2023-12-31 22:00:00+00', null],
        );
        assert.deepEqual(await roundTrip(f, keyed, 'timestamp', [at, '2024-01-01 08:09:10.5'], 'v::text'), [
          '2024-02-29 12:34:56.789',
          '2024-01-01 08:09:10.5',
        ]);
        assert.deepEqual(await roundTrip(f, keyed, 'date', [at, '2015-01-01', 'infinity'], 'v::text'), [
          '2024-02-29',
          '2015-01-01',
          'infinity',
        ]);
      }));

    it('bytea from Buffer and Uint8Array, all 256 byte values, views with an offset, empty', () =>
      withSchema('values', async (f) => {
        const view = new Uint8Array(allBytes.buffer, 250, 3); // bytes 250, 251, 252 of the buffer
        const values = [Buffer.from(allBytes), allBytes, view, Buffer.alloc(0), Buffer.from('\\N\t\n'), null];
        assert.deepEqual(await roundTrip(f, keyed, 'bytea', values), [
          Buffer.from(allBytes),
          Buffer.from(allBytes),
          Buffer.from([250, 251, 252]),
          Buffer.alloc(0),
          Buffer.from('\\N\t\n'),
          null,
        ]);
      }));

    it('integer[] and text[] with NULL items, empty arrays, nested arrays and tricky strings', () =>
      withSchema('values', async (f) => {
        assert.deepEqual(
          await roundTrip(f, keyed, 'integer[]', [
            [1, null, 3],
            [],
            [
              [1, 2],
              [3, 4],
            ],
            null,
            [null],
          ]),
          [
            [1, null, 3],
            [],
            [
              [1, 2],
              [3, 4],
            ],
            null,
            [null],
          ],
        );
        assert.deepEqual(await roundTrip(f, keyed, 'text[]', [TRICKY, [null, 'NULL', null], ['']]), [
          TRICKY,
          [null, 'NULL', null],
          [''],
        ]);
        const [texts] = await roundTrip(f, keyed, 'text[]', [[null, 'NULL']], 'array_to_json(v)::text');
        assert.equal(texts, '[null,"NULL"]', 'a NULL item and the string NULL differ');
      }));

    for (const type of ['json', 'jsonb']) {
      it(`${type} from objects, arrays, strings, numbers and booleans`, () =>
        withSchema('values', async (f) => {
          const object = {
            a: 1,
            'tab\tkey': 'new\nline \\ "q" 🐘',
            nested: { list: [1, null, 'x'], empty: {} },
          };
          const values = [
            object,
            [1, 'two', { three: 3 }],
            'just a string',
            '{"not": "parsed"}',
            42.5,
            true,
            null,
          ];
          assert.deepEqual(await roundTrip(f, keyed, type, values), [
            object,
            [1, 'two', { three: 3 }],
            'just a string',
            '{"not": "parsed"}',
            42.5,
            true,
            null,
          ]);
          const [big] = await roundTrip(f, keyed, type, [{ big: 2n ** 63n - 1n }]);
          assert.deepEqual(big, { big: '9223372036854775807' });
          if (type === 'json') {
            const [text] = await roundTrip(f, keyed, type, [{ b: 1, a: [true] }], 'v::text');
            assert.equal(text, '{"b":1,"a":[true]}', 'json keeps the text as JSON.stringify wrote it');
          }
        }));
    }

    it('a row of every kind at once lands in the right columns', () =>
      withSchema('values', async (f) => {
        const table = tableWith(f.schema, 'all', keyed, [
          { name: 'n', type: 'bigint' },
          { name: 's', type: 'text' },
          { name: 'b', type: 'boolean' },
          { name: 'd', type: 'date' },
          { name: 'bytes', type: 'bytea' },
          { name: 'list', type: 'text[]' },
          { name: 'doc', type: 'jsonb' },
        ]);
        const row = [
          1,
          5n,
          'a\tb\nc',
          false,
          '2020-02-02',
          Buffer.from([0, 9, 10]),
          ['x\ty', null],
          { k: ['\t'] },
        ];
        await ingest(
          f.client,
          [table],
          batchesOf(['1', null, rowsOf(table, row, [2, null, null, null, null, null, null, null])]),
        );
        const { rows } = await f.observer.query(
          `SELECT id, n, s, b, d::text, bytes, list, doc FROM "${f.schema}"."all" ORDER BY id`,
        );
        assert.deepEqual(rows, [
          {
            id: 1,
            n: '5',
            s: 'a\tb\nc',
            b: false,
            d: '2020-02-02',
            bytes: Buffer.from([0, 9, 10]),
            list: ['x\ty', null],
            doc: { k: ['\t'] },
          },
          { id: 2, n: null, s: null, b: null, d: null, bytes: null, list: null, doc: null },
        ]);
      }));
  });
}
