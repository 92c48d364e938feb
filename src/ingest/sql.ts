/**
 * Identifiers are always quoted, whatever they contain (quotes, capitals, emoji); values are
 * never spliced into SQL text but sent as parameters.
 */

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
