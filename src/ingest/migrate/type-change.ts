/**
 * Which column type changes PostgreSQL makes without touching the rows, and which of two types
 * holds every value of the other. Types are compared as `format_type` prints them
 * (`character varying(16)`, `numeric(12,2)`), so aliases are already resolved.
 */

const VARCHAR = /^character varying(?:\((\d+)\))?$/;
const NUMERIC = /^numeric(?:\((\d+),(\d+)\))?$/;
const INTEGERS = ['smallint', 'integer', 'bigint'];
const FLOATS = ['real', 'double precision'];

/**
 * True when `ALTER COLUMN ... TYPE to` neither rewrites nor scans a column of type `from`:
 * PostgreSQL's varchar and numeric support functions declare these length and precision
 * increases no-ops, and varchar → text is binary coercible. Everything else rewrites (int →
 * bigint) or checks every row (text → varchar(n)).
 */
export function changesWithoutRewrite(from: string, to: string): boolean {
  if (from === to) return true;
  const fromVarchar = VARCHAR.exec(from);
  if (fromVarchar) {
    if (to === 'text') return true;
    const toVarchar = VARCHAR.exec(to);
    if (!toVarchar) return false;
    if (toVarchar[1] === undefined) return true;
    return fromVarchar[1] !== undefined && Number(toVarchar[1]) >= Number(fromVarchar[1]);
  }
  const fromNumeric = NUMERIC.exec(from);
  const toNumeric = NUMERIC.exec(to);
  if (!fromNumeric || !toNumeric) return false;
  if (toNumeric[1] === undefined) return true;
  if (fromNumeric[1] === undefined) return false;
  return Number(toNumeric[1]) >= Number(fromNumeric[1]) && toNumeric[2] === fromNumeric[2];
}

/**
 * The narrowest type that holds every value of both, or undefined when neither holds the
 * other's (text and integer): what `SchemaChanges.ADDITIVE` widens a column to.
 */
export function widerType(a: string, b: string): string | undefined {
  if (changesWithoutRewrite(a, b)) return b;
  if (changesWithoutRewrite(b, a)) return a;
  for (const ladder of [INTEGERS, FLOATS]) {
    const i = ladder.indexOf(a);
    const j = ladder.indexOf(b);
    if (i >= 0 && j >= 0) return ladder[Math.max(i, j)];
  }
  const na = NUMERIC.exec(a);
  const nb = NUMERIC.exec(b);
  if (na?.[1] !== undefined && nb?.[1] !== undefined) {
    // Different scales: enough digits before the point for either, and the larger scale.
    const scale = Math.max(Number(na[2]), Number(nb[2]));
    const whole = Math.max(Number(na[1]) - Number(na[2]), Number(nb[1]) - Number(nb[2]));
    return whole + scale <= 1000 ? `numeric(${whole + scale},${scale})` : 'numeric';
  }
  return undefined;
}
