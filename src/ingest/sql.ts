/**
 * Identifiers are always quoted, whatever they contain (quotes, capitals, emoji); values are
 * never spliced into SQL text but sent as parameters. Also the one way a catalog row of a table
 * is read by its oid.
 */
import type pg from 'pg';
import { InvariantError } from '../errors.ts';

export function quoteIdent(name: string): string {
  return `"${name.replaceAll('"', '""')}"`;
}

export function qualifiedName(schema: string, name: string): string {
  return `${quoteIdent(schema)}.${quoteIdent(name)}`;
}

export function columnList(names: readonly string[]): string {
  return names.map(quoteIdent).join(', ');
}

/** PostgreSQL truncates identifiers longer than NAMEDATALEN - 1 bytes; we refuse them instead. */
export const MAX_IDENTIFIER_BYTES = 63;

/** A name for a relation this library creates for a moment, unlikely to clash with anything. */
export function temporaryRelationName(purpose: string): string {
  const random = Math.random().toString(36).slice(2, 10);
  return `_pgbi_${purpose}_${random}`;
}

/**
 * The one row a catalog query `text` returns for the table of oid `tableOid` ($1): a table the
 * caller has locked, so no row is a bug (InvariantError), not a user's error.
 */
export async function tableCatalogRow<R extends pg.QueryResultRow>(
  client: pg.ClientBase,
  text: string,
  tableOid: number,
): Promise<R> {
  const row = (await client.query<R>(text, [tableOid])).rows[0];
  if (row === undefined) throw new InvariantError(`Expected table oid ${tableOid} to exist`);
  return row;
}
