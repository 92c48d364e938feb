/**
 * A strict grammar for the column type strings `defineTable` accepts. A type string goes into
 * DDL as it is, so anything outside this grammar is refused before it can reach SQL:
 * `integer; DROP TABLE x` is an error, never SQL. PostgreSQL then has the last word when the
 * table is created (and canonicalises the name, e.g. `int4` → `integer`).
 */

/** Base types, lower case, with how many numeric modifiers each may take. */
const BASE_TYPES: ReadonlyMap<string, number> = new Map([
  ['smallint', 0],
  ['int2', 0],
  ['integer', 0],
  ['int', 0],
  ['int4', 0],
  ['bigint', 0],
  ['int8', 0],
  ['real', 0],
  ['float4', 0],
  ['double precision', 0],
  ['float8', 0],
  ['float', 1],
  ['numeric', 2],
  ['decimal', 2],
  ['money', 0],
  ['text', 0],
  ['varchar', 1],
  ['character varying', 1],
  ['char', 1],
  ['character', 1],
  ['bpchar', 1],
  ['citext', 0],
  ['boolean', 0],
  ['bool', 0],
  ['date', 0],
  ['time', 1],
  ['timetz', 1],
  ['timestamp', 1],
  ['timestamptz', 1],
  ['interval', 1],
  ['uuid', 0],
  ['json', 0],
  ['jsonb', 0],
  ['bytea', 0],
  ['inet', 0],
  ['cidr', 0],
  ['macaddr', 0],
  ['macaddr8', 0],
  ['tsvector', 0],
  ['xml', 0],
  ['oid', 0],
  ['point', 0],
  ['int4range', 0],
  ['int8range', 0],
  ['numrange', 0],
  ['tsrange', 0],
  ['tstzrange', 0],
  ['daterange', 0],
]);

const TIME_ZONE_SUFFIX = /\s+with(?:out)?\s+time\s+zone$/;
const TYPE_SHAPE =
  /^([a-z][a-z0-9]*(?:\s+[a-z][a-z0-9]*)?)\s*(?:\(\s*(\d+)\s*(?:,\s*(\d+)\s*)?\))?((?:\s*\[\s*\d*\s*\])*)$/;

export interface ParsedType {
  /** The base type's name, lower case, e.g. `varchar` or `timestamp`. */
  readonly base: string;
  /** Number of array dimensions: `text[]` is 1. */
  readonly arrayDimensions: number;
  /** The numeric modifiers as written: `[64]` for `varchar(64)`, `[12, 2]` for `numeric(12,2)`, `[]` for none. */
  readonly modifiers: readonly number[];
}

/** Parses a type string or returns a reason it is not one this library accepts. */
export function parsePgType(typeString: string): ParsedType | { error: string } {
  let text = typeString.trim().toLowerCase().replace(/\s+/g, ' ');
  let timeZone = false;
  // `timestamp(3) with time zone[]`: the time zone words sit between the modifier and the brackets.
  const arraySuffix = /((?:\s*\[\s*\d*\s*\])*)$/.exec(text)?.[1] ?? '';
  const withoutArray = text.slice(0, text.length - arraySuffix.length);
  if (TIME_ZONE_SUFFIX.test(withoutArray)) {
    timeZone = true;
    text = withoutArray.replace(TIME_ZONE_SUFFIX, '') + arraySuffix;
  }
  const match = TYPE_SHAPE.exec(text);
  if (!match) return { error: 'is not a PostgreSQL type name' };
  const [, base = '', firstModifier, secondModifier, brackets = ''] = match;
  const allowedModifiers = BASE_TYPES.get(base);
  if (allowedModifiers === undefined) return { error: `has an unknown base type "${base}"` };
  const modifiers = [firstModifier, secondModifier].filter((m) => m !== undefined).length;
  if (modifiers > allowedModifiers) {
    return { error: `gives ${modifiers} modifier(s) to "${base}", which takes at most ${allowedModifiers}` };
  }
  if (timeZone && !['time', 'timestamp'].includes(base)) {
    return { error: `puts "time zone" on "${base}", which is not time or timestamp` };
  }
  return {
    base,
    arrayDimensions: (brackets.match(/\[/g) ?? []).length,
    modifiers: [firstModifier, secondModifier].filter((m) => m !== undefined).map(Number),
  };
}
