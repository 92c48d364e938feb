/**
 * JSON numbers read losslessly (exact-json.ts `parseJsonKeepingNumbers`: the gateway's body, the
 * CLI's NDJSON) turned into wire values by their column's type, so that a number reaches
 * PostgreSQL with the digits it was written with, as a CSV field does. `JSON.parse` stored `1234567890.123456789` into numeric as
 * `1234567890.1234567` and `1e400` as `Infinity`.
 *
 * - integer types: the integer's digits (a number when it is a safe integer, else a string of
 *   digits); refused when it is not a whole number (`1.5`) or out of the type's range.
 * - numeric/decimal: the text as written (`1.10` keeps its scale, `1e400` is 10^400, which
 *   numeric holds); refused beyond numeric's own range. money: the same value without exponent.
 * - real/double precision: the text as written (PostgreSQL rounds it to the same float);
 *   refused when it overflows or underflows the type (`1e400`, `1e-400`), as PostgreSQL would.
 * - json/jsonb: unchanged; the Producer writes a `JsonNumber` inside with its digits.
 * - any other type (text, dates, ...): the text as written, as the CSV field would be; bool and
 *   bytea get the number, which the batch contract refuses for them as before.
 */
import { JsonNumber } from '../ingest/exact-json.ts';
import { INTEGER_RANGES, INTEGER_TYPES, integerOutOfRange, NUMBER_TYPES } from '../ingest/value-rules.ts';

/** Why a number cannot go into its column. */
export class WireNumberError extends Error {}

const FLOAT_TYPES = new Set(['real', 'float4', 'double precision', 'float8', 'float']);
/** numeric's own limits: up to 131072 digits before the decimal point, 16383 after. */
const NUMERIC_MAX_WEIGHT = 131_072;
const NUMERIC_MAX_SCALE = 16_383;

/**
 * A value of a column (an array for array columns) with its `JsonNumber`s as wire values.
 * Throws WireNumberError saying why a number cannot go into the column.
 */
export function exactWireValue(value: unknown, base: string, arrayDimensions: number): unknown {
  if (base === 'json' || base === 'jsonb') return value;
  if (value instanceof JsonNumber)
    return arrayDimensions > 0 ? value.toValue() : numberForColumn(value, base);
  if (arrayDimensions > 0 && Array.isArray(value))
    return value.map((item) => exactWireValue(item, base, arrayDimensions - 1));
  return value;
}

const SHORT_INTEGER = /^-?\d{1,15}$/;
const NO_EXPONENT = /^[^eE]{1,1000}$/;

function numberForColumn(number: JsonNumber, base: string): unknown {
  const text = number.text;
  // Fast paths for the usual numbers: a short integer, a decimal without exponent.
  if (INTEGER_TYPES.has(base) && SHORT_INTEGER.test(text)) {
    const n = Number(text);
    const range = INTEGER_RANGES.get(base);
    if (range === undefined || (n >= Number(range[0]) && n <= Number(range[1]))) return n === 0 ? 0 : n;
  }
  if (NUMBER_TYPES.has(base) && !FLOAT_TYPES.has(base) && base !== 'money' && NO_EXPONENT.test(text))
    return text;
  const decimal = decimalOf(text);
  if (INTEGER_TYPES.has(base)) {
    const digits = integerDigits(decimal, number.text, base);
    const n = Number(digits);
    return Number.isSafeInteger(n) ? n : digits;
  }
  if (FLOAT_TYPES.has(base)) {
    const n = Number(number.text);
    const single = base === 'real' || base === 'float4';
    const stored = single ? Math.fround(n) : n;
    if (!Number.isFinite(stored) || (stored === 0 && decimal.digits !== ''))
      throw new WireNumberError(`${number.text} is out of range for type ${base}`);
    return number.text;
  }
  if (NUMBER_TYPES.has(base)) {
    const scale = Math.max(0, decimal.digits.length - decimal.point);
    if (decimal.digits !== '' && (decimal.point > NUMERIC_MAX_WEIGHT || scale > NUMERIC_MAX_SCALE))
      throw new WireNumberError(`${number.text} is beyond the range of type ${base}`);
    if (base === 'money' && decimal.point > 17)
      throw new WireNumberError(`${number.text} is out of range for type money`);
    return base === 'money' ? plainText(decimal) : number.text;
  }
  if (base === 'bool' || base === 'boolean' || base === 'bytea') return number.toValue();
  return number.text;
}

/** A decimal as sign, significant digits (no leading zeros) and where the point goes among them. */
interface Decimal {
  readonly negative: boolean;
  /** Digits without leading zeros ('' for zero); trailing zeros as written, e.g. `1.10` -> `110`. */
  readonly digits: string;
  /** The value is 0.digits × 10^point. */
  readonly point: number;
}

function decimalOf(text: string): Decimal {
  const match = /^(-?)(\d+)(?:\.(\d+))?(?:[eE]([+-]?\d+))?$/.exec(text);
  if (match === null) throw new WireNumberError(`${text} is not a finite number`);
  const [, sign = '', whole = '', fraction = '', exponent = '0'] = match;
  const all = whole + fraction;
  const leading = all.length - all.replace(/^0+/, '').length;
  const digits = all.slice(leading);
  return { negative: sign === '-', digits, point: whole.length - leading + Number(exponent) };
}

function integerDigits(decimal: Decimal, text: string, base: string): string {
  const { digits, point } = decimal;
  if (digits === '') return '0';
  if (/[1-9]/.test(digits.slice(Math.max(point, 0))))
    throw new WireNumberError(`${text} is not a whole number, which type ${base} needs`);
  const range = INTEGER_RANGES.get(base) ?? INTEGER_RANGES.get('bigint');
  // More than 20 digits is beyond every integer type (and keeps BigInt small for `1e400000`).
  if (point > 20) throw new WireNumberError(integerOutOfRange(base, text));
  const value = BigInt(`${decimal.negative ? '-' : ''}${digits.slice(0, point).padEnd(point, '0')}`);
  if (range && (value < range[0] || value > range[1]))
    throw new WireNumberError(integerOutOfRange(base, text));
  return value.toString();
}

/** The decimal in plain notation, e.g. `1.5e3` -> `1500` (money takes no exponent). */
function plainText({ negative, digits, point }: Decimal): string {
  if (digits === '') return '0';
  const sign = negative ? '-' : '';
  if (point <= 0) return `${sign}0.${'0'.repeat(-point)}${digits}`;
  if (point >= digits.length) return `${sign}${digits}${'0'.repeat(point - digits.length)}`;
  return `${sign}${digits.slice(0, point)}.${digits.slice(point)}`;
}
