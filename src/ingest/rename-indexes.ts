/**
 * After a swap, the replacement's indexes (and its primary key constraint) still carry names
 * PostgreSQL derived from its temporary name, e.g. `_pgbi_new_x1y2_pkey`. They would show in
 * `\d` and in error messages ("violates unique constraint _pgbi_new_..."). Rename each to the
 * name it would have had on the live table, when that name is free.
 */
import type pg from 'pg';
import { MAX_IDENTIFIER_BYTES, qualifiedName, quoteIdent } from './sql.ts';

export async function renameReplacementIndexes(
  client: pg.ClientBase,
  schema: string,
  table: string,
  replacementName: string,
) {
  const { rows } = await client.query<{ name: string }>(
    `SELECT ic.relname::text AS name
       FROM pg_index i
       JOIN pg_class ic ON ic.oid = i.indexrelid
       JOIN pg_class t ON t.oid = i.indrelid
       JOIN pg_namespace n ON n.oid = t.relnamespace
      WHERE n.nspname = $1 AND t.relname = $2 AND starts_with(ic.relname, $3)`,
    [schema, table, replacementName],
  );
  for (const { name } of rows) {
    const wanted = truncateToBytes(`${table}${name.slice(replacementName.length)}`, MAX_IDENTIFIER_BYTES);
    const { rowCount } = await client.query(
      'SELECT 1 FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = $1 AND c.relname = $2',
      [schema, wanted],
    );
    // Renaming a primary key's or unique constraint's index renames the constraint too.
    if (rowCount === 0)
      await client.query(`ALTER INDEX ${qualifiedName(schema, name)} RENAME TO ${quoteIdent(wanted)}`);
  }
}

function truncateToBytes(text: string, maxBytes: number): string {
  let out = text;
  while (Buffer.byteLength(out) > maxBytes) out = [...out].slice(0, -1).join('');
  return out;
}
