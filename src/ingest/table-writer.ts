/**
 * Everything about one table within one batch: where its rows are COPYed to, how a row is
 * encoded, how many rows it has had, and the rows waiting while another table's COPY runs.
 */
import { RowError } from '../errors.ts';
import { encoderFor, type ValueEncoder, ValueEncodingError } from './copy-encoding.ts';
import { CopyText } from './copy-text.ts';
import { columnList, qualifiedName } from './sql.ts';
import type { IngestTable } from './table-definition.ts';

export class TableWriter {
  readonly table: IngestTable;
  /** The relation rows are COPYed into: the table itself, its replacement, or a staging table. */
  readonly copyTarget: string;
  /** Set when COPY goes to a staging table: the name of the extra leading column holding the row number. */
  readonly ordinalColumn: string | undefined;
  /** Rows of this table seen so far in the batch. */
  rowCount = 0;
  /** Encoded lines waiting for this table's next COPY (bounded by maxRowsPerTableBuffer). */
  pending: string[] = [];
  /** The batch row of each pending line, to place COPY errors. */
  pendingBatchRows: number[] = [];
  readonly #encoders: readonly ValueEncoder[];
  readonly #label: string;

  constructor(table: IngestTable, copyTarget: string, ordinalColumn?: string) {
    this.table = table;
    this.copyTarget = copyTarget;
    this.ordinalColumn = ordinalColumn;
    this.#encoders = table.columns.map(encoderFor);
    this.#label = qualifiedName(table.schema, table.name);
  }

  get copySql(): string {
    const names = this.table.columns.map((c) => c.name);
    return `COPY ${this.copyTarget} (${columnList(this.ordinalColumn ? [this.ordinalColumn, ...names] : names)}) FROM STDIN`;
  }

  /**
   * Encodes a row to one COPY line; `batchRow` (1-based, whole batch) names it in errors. Values
   * already in COPY text form (CopyText) pass through.
   */
  encode(values: unknown, batchRow: number): string {
    if (values instanceof CopyText) {
      this.rowCount += 1;
      return this.ordinalColumn ? `${this.rowCount}\t${values.line}` : values.line;
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
    this.rowCount += 1;
    let line = this.ordinalColumn ? `${this.rowCount}\t` : '';
    for (let i = 0; i < encoders.length; i++) {
      try {
        line += (encoders[i] as ValueEncoder)(values[i]);
      } catch (error) {
        if (!(error instanceof ValueEncodingError)) throw error;
        const column = this.table.columns[i]?.name ?? String(i);
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
    return line;
  }
}
