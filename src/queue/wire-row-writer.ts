/**
 * The Producer's side of the wire: a row of JavaScript values, checked against its table's
 * columns and written as the JSON text of a wire row, `["schema.table",[values]]`.
 *
 * Each column gets a converter chosen once from its type, with a fast path for the values that
 * column usually gets (a number for an integer column, a Date or string for a timestamp, a plain
 * object for jsonb, ...) that applies the column's value rule (value-rules.ts: ranges, lengths,
 * date and uuid forms, JSON-ability); anything else goes through the general rule, `toWireValue`
 * then `wireValueProblem`. Both give the same wire value; the row is then one `JSON.stringify`.
 * The characters of every string (NUL, lone surrogates) are checked once per row, on that JSON
 * text (`jsonTextMayHoldBadString`), not string by string.
 */
import { isoString } from '../ingest/copy-encoding.ts';
import { stringifyJson } from '../ingest/exact-json.ts';
import type { ColumnDefinition, IngestTable } from '../ingest/table-definition.ts';
import { jsonTextMayHoldBadString, jsonValueProblem } from '../ingest/text-rules.ts';
import { INTEGER_TYPES, NUMBER_TYPES, type ValueRule, valueRuleFor } from '../ingest/value-rules.ts';
import { InvalidBatchError, tableKey, toWireValue, wireValueProblem } from './batch-contract.ts';

/** Why a value cannot go into its column; the row writer adds where. */
class WireValueError extends Error {}

/** A value as it travels (the same value when it already is its wire form), or WireValueError. */
type WireConverter = (value: unknown) => unknown;

export class WireRowWriter {
  readonly table: IngestTable;
  readonly key: string;
  readonly #converters: readonly WireConverter[];
  /** BadRows.QUARANTINE: a value validation refuses travels as toWireValue writes it, for the worker to quarantine. */
  readonly #keepBadValues: boolean;
  /**
   * With `keepBadValues`: why the row last written would have been refused (its first bad
   * value: `column "c" (type): reason`), or undefined. The Producer lists these rows in the
   * batch's header, and the worker quarantines them with this reason, unsent to PostgreSQL.
   */
  problem: string | undefined;

  constructor(table: IngestTable, keepBadValues = false) {
    this.table = table;
    this.key = tableKey(table);
    this.#converters = table.columns.map(converterFor);
    this.#keepBadValues = keepBadValues;
  }

  /** The row as wire JSON; throws InvalidBatchError naming the batch (`label`), the row and the column. */
  write(values: readonly unknown[], label: string, row: number): string {
    const converters = this.#converters;
    if (!Array.isArray(values) || values.length !== converters.length) {
      throw new InvalidBatchError(
        `${label}, row ${row} (${this.key}): has ${Array.isArray(values) ? values.length : 'no'} values; the table has ${converters.length} columns`,
        { row, table: this.key },
      );
    }
    const wire: unknown[] = new Array(converters.length);
    this.problem = undefined;
    for (let i = 0; i < converters.length; i++) {
      try {
        wire[i] = (converters[i] as WireConverter)(values[i]);
      } catch (error) {
        if (!(error instanceof WireValueError)) throw error;
        if (this.#keepBadValues) {
          // BadRows.QUARANTINE: the row travels as it came, marked; the worker quarantines it.
          wire[i] = toWireValue(values[i]);
          this.problem ??= this.#where(i, error.message);
          continue;
        }
        throw this.#valueError(i, error.message, label, row);
      }
    }
    const text = this.#stringify(wire, label, row);
    if (jsonTextMayHoldBadString(text)) this.#checkStrings(wire, label, row);
    return text;
  }

  /**
   * One JSON.stringify per row: a flat string, where building it piece by piece would leave a
   * rope of small strings per row for the garbage collector to copy while the part fills.
   */
  #stringify(wire: unknown[], label: string, row: number): string {
    try {
      return JSON.stringify([this.key, wire]);
    } catch {
      // Only a json value holding a BigInt gets here (written as a string, as ingest() does), or
      // a JsonNumber read losslessly by the gateway or the NDJSON reader (written with its
      // digits), or a cycle. The exact writer is slower: used only when needed.
      try {
        return stringifyJson([this.key, wire], { bigintAsString: true });
      } catch (error) {
        throw new InvalidBatchError(
          `${label}, row ${row} (${this.key}): cannot be encoded as JSON: ${(error as Error).message}`,
          { row, table: this.key },
        );
      }
    }
  }

  /** The row's text may hold a NUL or a lone surrogate: find the column (a json column keeps both). */
  #checkStrings(wire: unknown[], label: string, row: number): void {
    this.table.columns.forEach((column, i) => {
      if (column.parsedType.base === 'json') return;
      const problem = jsonValueProblem(wire[i], true);
      if (problem === undefined) return;
      if (!this.#keepBadValues) throw this.#valueError(i, problem, label, row);
      this.problem ??= this.#where(i, problem);
    });
  }

  /** `column "c" (type): problem`. */
  #where(i: number, problem: string): string {
    const column = this.table.columns[i] as ColumnDefinition;
    return `column "${column.name}" (${column.type}): ${problem}`;
  }

  #valueError(i: number, problem: string, label: string, row: number): InvalidBatchError {
    const column = this.table.columns[i] as ColumnDefinition;
    return new InvalidBatchError(
      `${label}, row ${row} (${this.key}), column "${column.name}" (${column.type}): ${problem}`,
      { row, table: this.key, column: column.name },
    );
  }
}

const TEXT_TYPES = new Set([
  'text',
  'varchar',
  'character varying',
  'char',
  'character',
  'date',
  'timestamp', // `timestamp with(out) time zone` too: the type grammar gives it this base (pg-type.ts)
  'timestamptz',
  'uuid',
]);
/** Types whose rule any valid Date's 24-character ISO text (years 1000 to 9999) passes. */
const DATE_TYPES = new Set(['date', 'timestamp', 'timestamptz']);

function converterFor(column: ColumnDefinition): WireConverter {
  const type = column.parsedType;
  const { base, arrayDimensions } = type;
  if (base === 'json' || base === 'jsonb') return jsonConverter(column);
  const general = generalConverter(column);
  if (arrayDimensions > 0) return general;
  const rule: ValueRule = valueRuleFor(type) ?? (() => undefined);
  if (INTEGER_TYPES.has(base)) {
    return (v) =>
      typeof v === 'number' && Number.isSafeInteger(v) && rule(v) === undefined ? v : general(v);
  }
  if (NUMBER_TYPES.has(base))
    return (v) => (typeof v === 'number' && Number.isFinite(v) && rule(v) === undefined ? v : general(v));
  if (base === 'bool' || base === 'boolean') return (v) => (typeof v === 'boolean' ? v : general(v));
  if (TEXT_TYPES.has(base)) {
    const datesFit = DATE_TYPES.has(base);
    return (v) => {
      if (typeof v === 'string') return rule(v) === undefined ? v : general(v);
      if (!(v instanceof Date) || Number.isNaN(v.getTime())) return general(v);
      const text = isoString(v);
      return (datesFit && text.length === 24) || rule(text) === undefined ? text : general(v);
    };
  }
  return general;
}

/** The general rule, for every value the fast paths do not take. */
function generalConverter(column: ColumnDefinition): WireConverter {
  return (value) => {
    if (value instanceof Date && Number.isNaN(value.getTime()))
      throw new WireValueError('is an invalid Date');
    const wire = toWireValue(value);
    const problem = wireValueProblem(column.parsedType, wire, column.nullable);
    if (problem) throw new WireValueError(problem);
    if (typeof wire === 'function' || typeof wire === 'symbol')
      throw new WireValueError(`cannot be encoded as JSON: a ${typeof wire}`);
    return wire;
  };
}

/**
 * json and jsonb values travel as they are (JSON.stringify writes them, as ingest() does), once
 * `jsonValueProblem` has refused what JSON cannot hold: NaN, Infinity, Buffers, Maps, ...
 */
function jsonConverter(column: ColumnDefinition): WireConverter {
  return (value) => {
    if (value === null || value === undefined) {
      const problem = wireValueProblem(column.parsedType, null, column.nullable);
      if (problem) throw new WireValueError(problem);
      return null;
    }
    if (typeof value === 'function' || typeof value === 'symbol')
      throw new WireValueError(`cannot be encoded as JSON: a ${typeof value}`);
    const problem = jsonValueProblem(value, false); // strings: on the row's text
    if (problem !== undefined) throw new WireValueError(problem);
    return value;
  };
}
