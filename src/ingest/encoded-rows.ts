/**
 * Rows already encoded by their source, for the queue worker: it transcodes the JSON rows it
 * reads from Redis straight into COPY text, which costs less than building JavaScript values.
 * Internal: `ingest()` takes `Rows` (options.ts); only `runIngest` (ingest.ts) takes these too.
 */
import type { Batch, Json, Row, Rows } from './options.ts';
import type { IngestTable } from './table-definition.ts';

/**
 * A row's values already in COPY text form: the fields, tab-separated and escaped, and the final
 * newline. The text is sent as it is: the source vouches for its column count and escaping,
 * PostgreSQL checks the values.
 */
export class CopyText {
  readonly line: string;
  /** The JSON text of the row as it came (`["schema.table", [v1, v2, ...]]`), kept for `BadRows.QUARANTINE`. */
  readonly wireJson: string | undefined;

  constructor(line: string, wireJson?: string) {
    this.line = line;
    this.wireJson = wireJson;
  }
}

/** A row whose values are already COPY text. */
export type EncodedRow = readonly [table: IngestTable, text: CopyText];

/** A row of either kind: TableWriter.encode tells them apart. */
export type SourceRow = Row | EncodedRow;

/**
 * A block of rows that can also give the COPY text of all its rows at once, as bytes, when they
 * are all of one table (the worker's parts: wire-part-bytes.ts). Read as an Iterable otherwise.
 */
export interface CopyBlock extends Iterable<SourceRow> {
  /**
   * The COPY lines of the block's rows, each prefixed with its ordinal (`firstOrdinal`, +1 per
   * row) when given; undefined when a row is of another table or needs the row by row path.
   */
  copyText(
    table: IngestTable,
    firstOrdinal: number | undefined,
  ): { bytes: Uint8Array; rows: number } | undefined;
}

export function isCopyBlock(block: Iterable<SourceRow>): block is CopyBlock {
  return typeof (block as Partial<CopyBlock>).copyText === 'function';
}

/**
 * Rows that arrive in blocks: an async source of synchronous row iterables, e.g. the worker's
 * rows, fetched from Redis a part at a time, some transcoded, some not. BatchRows reads the rows
 * of a block without an `await` per row (which costs more than encoding the row, and allocates),
 * and takes a CopyBlock's bytes whole when it can.
 */
export class EncodedRows {
  readonly blocks: AsyncIterable<Iterable<SourceRow>>;

  constructor(blocks: AsyncIterable<Iterable<SourceRow>>) {
    this.blocks = blocks;
  }
}

/** What a batch's rows may be given as, inside the package. */
export type RowSource = Rows | EncodedRows;

/** A batch as `runIngest` takes it: `ingest()`'s Batch, or one whose rows are EncodedRows. */
export type SourceBatch = readonly [highWatermark: Batch[0], metadata: Batch[1], rows: RowSource];
export type SourceBatches = (
  highWatermark: Json | null,
) => Iterable<SourceBatch> | AsyncIterable<SourceBatch>;

/**
 * Whether an iterator's `next()` gave a promise: readers of rows (BatchRows, the Producer) await
 * only then, so rows given as a sync iterable cost no await each.
 */
export function isPromiseLike<T>(value: T | PromiseLike<T>): value is PromiseLike<T> {
  return typeof (value as PromiseLike<T>).then === 'function';
}
