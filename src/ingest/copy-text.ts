import type { Row } from './options.ts';
import type { IngestTable } from './table-definition.ts';

/**
 * A row's values already in COPY text form: the fields, tab-separated and escaped, and the final
 * newline. For a source that can write COPY text more cheaply than it can build JavaScript
 * values (the queue worker transcodes the JSON rows it reads from Redis straight into it). The
 * text is sent as it is: the source vouches for its column count and escaping, PostgreSQL checks
 * the values. Internal: not part of the public API.
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

/**
 * A row whose values are a CopyText, typed as the Row the ingest pipeline carries: rows only
 * reach their values through TableWriter.encode, which tells the two apart.
 */
export function copyTextRow(table: IngestTable, line: string, wireJson?: string): Row {
  return [table, new CopyText(line, wireJson) as unknown as readonly unknown[]];
}
