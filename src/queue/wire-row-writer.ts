/**
 * The Producer's side of the wire: a row of JavaScript values, checked against its table's
 * columns and written as the JSON text of a wire row, `["schema.table",[values]]`.
 *
 * Each column gets a converter chosen once from its type, with a fast path for the values that
 * column usually gets (a number for an integer column, a Date or string for a timestamp, a plain
 * object for jsonb, ...); anything else goes through the general rule, `toWireValue` then
 * `wireValueProblem`. Both give the same wire value; the row is then one `JSON.stringify`.
 */
import { isoString } from '../ingest/copy-encoding.ts';
import type { ColumnDefinition, IngestTable } from '../ingest/table-definition.ts';
import {
  INTEGER_TYPES,
  InvalidBatchError,
  NUMBER_TYPES,
  tableKey,
  toWireValue,
  wireValueProblem,
} from './batch-contract.ts';

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
        const column = this.table.columns[i] as ColumnDefinition;
        if (this.#keepBadValues) {
          wire[i] = toWireValue(values[i]);
          this.problem ??= `column "${column.name}" (${column.type}): ${error.message}`;
          continue;
        }
        throw new InvalidBatchError(
          `${label}, row ${row} (${this.key}), column "${column.name}" (${column.type}): ${error.message}`,
          {
            row,
            table: this.key,
            column: column.name,
          },
        );
      }
    }
    // One JSON.stringify per row: a flat string, where building it piece by piece would leave a
    // rope of small strings per row for the garbage collector to copy while the part fills.
    try {
      return JSON.stringify([this.key, wire]);
    } catch {
      // Only a json value holding a BigInt gets here (or a cycle): written as a string, as
      // ingest() does. A replacer makes JSON.stringify several times slower: used only when needed.
      try {
        return JSON.stringify([this.key, wire], (_key, v) => (typeof v === 'bigint' ? v.toString() : v));
      } catch (error) {
        throw new InvalidBatchError(
          `${label}, row ${row} (${this.key}): cannot be encoded as JSON: ${(error as Error).message}`,
          {
            row,
            table: this.key,
          },
        );
      }
    }
  }
}

const TEXT_TYPES = new Set([
  'text',
  'varchar',
  'character varying',
  'char',
  'character',
  'date',
  'timestamp',
  'timestamptz',
  'timestamp with time zone',
  'timestamp without time zone',
  'uuid',
]);

function converterFor(column: ColumnDefinition): WireConverter {
  const { base, arrayDimensions } = column.parsedType;
  const general = generalConverter(column);
  if (arrayDimensions > 0) return general;
  if (INTEGER_TYPES.has(base))
    return (v) => (typeof v === 'number' && Number.isSafeInteger(v) ? v : general(v));
  if (NUMBER_TYPES.has(base)) return (v) => (typeof v === 'number' && Number.isFinite(v) ? v : general(v));
  if (base === 'bool' || base === 'boolean') return (v) => (typeof v === 'boolean' ? v : general(v));
  if (base === 'json' || base === 'jsonb') {
    // A plain object as it is; arrays (whose items may be Dates, Buffers, bigints) by the general rule.
    return (v) => (v !== null && typeof v === 'object' && isPlainObject(v) ? v : general(v));
  }
  if (TEXT_TYPES.has(base)) {
    return (v) =>
      typeof v === 'string' ? v : v instanceof Date && !Number.isNaN(v.getTime()) ? isoString(v) : general(v);
  }
  return general;
}

/** The general rule, for every value the fast paths do not take. */
function generalConverter(column: ColumnDefinition): WireConverter {
  const { base, arrayDimensions } = column.parsedType;
  return (value) => {
    if (value instanceof Date && Number.isNaN(value.getTime()))
      throw new WireValueError('is an invalid Date');
    const wire = toWireValue(value);
    const problem = wireValueProblem(base, arrayDimensions, wire, column.nullable);
    if (problem) throw new WireValueError(problem);
    if (typeof wire === 'function' || typeof wire === 'symbol')
      throw new WireValueError(`cannot be encoded as JSON: a ${typeof wire}`);
    return wire;
  };
}

function isPlainObject(value: object): boolean {
  const proto = Object.getPrototypeOf(value);
  return proto === Object.prototype || proto === null;
}
