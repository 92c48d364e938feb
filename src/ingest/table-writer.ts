/**
 * How one table's rows of a batch become COPY text: where they are COPYed to, how a row is
 * encoded, how many rows it has had, and (under `BadRows.QUARANTINE`) every line sent.
 */
import { RowError } from '../errors.ts';
import { encoderFor, type ValueEncoder, ValueEncodingError } from './copy-encoding.ts';
import { CopyText } from './encoded-rows.ts';
import type { RejectedRow } from './rejected-rows.ts';
import { columnList, qualifiedName } from './sql.ts';
import type { IngestTable } from './table-definition.ts';
import { toWireValue } from './wire-value.ts';

/**
 * Every line a writer sent, for `BadRows.QUARANTINE`: when a COPY fails on a row, the rows are
 * gone from the source, so isolating the bad ones (bad-rows.ts) needs them kept. Costs the
 * batch's COPY text in memory, only in that mode.
 */
export interface RetainedLines {
  /**
   * The COPY text sent, as the chunks BatchRows built (each flattened once, when sent). Kept per
   * chunk, not per line: 100,000 line strings kept alive doubled the time of a clean batch
   * (the garbage collector copies every survivor), 16 KiB chunks cost next to nothing.
   */
  readonly chunks: string[];
  readonly batchRows: number[];
  /** The values as given (an array; a queue row's wire JSON text), to store a rejected row in the wire format. */
  readonly values: unknown[];
}

export class TableWriter {
  readonly table: IngestTable;
  /** The relation rows are COPYed into: the table itself, its replacement, or a staging table. */
  readonly copyTarget: string;
  /** Set when COPY goes to a staging table: the name of the extra leading column holding the row number. */
  readonly ordinalColumn: string | undefined;
  /** Rows of this table seen so far in the batch. */
  rowCount = 0;
  /** Set under `BadRows.QUARANTINE`: every line sent, in order (line i has ordinal i + 1). */
  readonly retained: RetainedLines | undefined;
  /** Under `BadRows.QUARANTINE`: rows refused while encoding (a value that cannot be written to its column). */
  readonly rejected: RejectedRow[] = [];
  readonly #encoders: readonly ValueEncoder[];
  readonly #label: string;

  constructor(table: IngestTable, copyTarget: string, ordinalColumn?: string, quarantine = false) {
    this.table = table;
    this.copyTarget = copyTarget;
    this.ordinalColumn = ordinalColumn;
    this.retained = quarantine ? { chunks: [], batchRows: [], values: [] } : undefined;
    this.#encoders = table.columns.map(encoderFor);
    this.#label = qualifiedName(table.schema, table.name);
  }

  get copySql(): string {
    const names = this.table.columns.map((c) => c.name);
    return `COPY ${this.copyTarget} (${columnList(this.ordinalColumn ? [this.ordinalColumn, ...names] : names)}) FROM STDIN`;
  }

  /**
   * Encodes a row to one COPY line; `batchRow` (1-based, whole batch) names it in errors. Values
   * already in COPY text form (CopyText) pass through. Under `BadRows.QUARANTINE`, a value that
   * cannot be encoded rejects its row (undefined: no line) instead of failing the batch.
   */
  encode(values: unknown, batchRow: number): string | undefined {
    if (values instanceof CopyText) {
      this.rowCount += 1;
      return this.#retain(
        this.ordinalColumn ? `${this.rowCount}\t${values.line}` : values.line,
        batchRow,
        values,
      );
    }
    const encoders = this.#encoders;
    if (!Array.isArray(values) || values.length !== encoders.length) {
      const got = Array.isArray(values)
        ? `${values.length} values`
        : `a ${typeof values}, not an array of values`;
      throw new RowError(
        `Row ${batchRow} of the batch for ${this.#label} has ${got}; the table has ${encoders.length} columns`,
        {
          table: this.#label,
          row: batchRow,
        },
      );
    }
    let line = this.ordinalColumn ? `${this.rowCount + 1}\t` : '';
    for (let i = 0; i < encoders.length; i++) {
      try {
        line += (encoders[i] as ValueEncoder)(values[i]);
      } catch (error) {
        if (!(error instanceof ValueEncodingError)) throw error;
        const column = this.table.columns[i]?.name ?? String(i);
        if (this.retained) {
          this.reject(values, batchRow, `column "${column}": value ${error.message}`);
          return undefined;
        }
        throw new RowError(
          `Row ${batchRow} of the batch for ${this.#label}, column "${column}": value ${error.message}`,
          {
            table: this.#label,
            row: batchRow,
            column,
          },
        );
      }
      line += i === encoders.length - 1 ? '\n' : '\t';
    }
    this.rowCount += 1;
    return this.#retain(line, batchRow, values);
  }

  /** Counts `rows` rows whose COPY lines their source encoded, with their ordinals (a CopyBlock's). */
  countEncoded(rows: number): void {
    this.rowCount += rows;
  }

  /** Records a chunk of COPY text built from this writer's lines: kept under `BadRows.QUARANTINE`. */
  sent(chunk: string): void {
    this.retained?.chunks.push(chunk);
  }

  /** Under `BadRows.QUARANTINE`, every line sent, in order (line i has ordinal i + 1): split from the kept chunks. */
  retainedLines(): string[] {
    const text = (this.retained as RetainedLines).chunks.join('');
    const lines = text.split('\n');
    lines.pop(); // after the last newline
    return lines.map((line) => `${line}\n`);
  }

  #retain(line: string, batchRow: number, values: unknown): string {
    const retained = this.retained;
    if (retained) {
      retained.batchRows.push(batchRow);
      // A queue row keeps only its wire text (a slice of its part), not the CopyText and its line.
      retained.values.push(
        values instanceof CopyText && values.wireJson !== undefined ? values.wireJson : values,
      );
    }
    return line;
  }

  /** Rejects a row unsent, e.g. one the queue's validation refused (the hook `refusedRows`). */
  reject(values: unknown, batchRow: number, message: string): void {
    this.rejected.push({
      tableSchema: this.table.schema,
      tableName: this.table.name,
      batchRow,
      values: wireValuesOf(values),
      sqlState: null,
      message,
    });
  }

  /** A retained line's row as rejected: `index` into `retained`. */
  rejectedRow(index: number, sqlState: string | null, message: string): RejectedRow {
    const retained = this.retained as RetainedLines;
    return {
      tableSchema: this.table.schema,
      tableName: this.table.name,
      batchRow: retained.batchRows[index] as number,
      values: wireValuesOf(retained.values[index]),
      sqlState,
      message,
    };
  }
}

/** A row's values in the wire format: as they came for the queue's rows, converted for ingest()'s. */
function wireValuesOf(values: unknown): readonly unknown[] {
  if (typeof values === 'string') return (JSON.parse(values) as [string, unknown[]])[1]; // a queue row's wire text
  if (values instanceof CopyText) {
    if (values.wireJson !== undefined) return (JSON.parse(values.wireJson) as [string, unknown[]])[1];
    return values.line.replace(/\n$/, '').split('\t'); // no wire form given: the COPY fields
  }
  return Array.isArray(values) ? values.map(toWireValue) : [];
}
