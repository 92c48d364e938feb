/** The generated rows as `ingest()` batches: one batch per 100,000 rows, each streamed lazily. */
import type { Batch, Batches, IngestTable, Row } from '../src/index.ts';
import { type BenchRow, generateBatches } from './generate-rows.ts';
import type { MethodContext } from './method.ts';

function* tagged(table: IngestTable, rows: Iterable<BenchRow>): Generator<Row> {
  for (const values of rows) yield [table, values];
}

/** `batches` for `ingest()`: the high watermark is the number of rows written so far. */
export function benchBatches(ctx: MethodContext, table: IngestTable): Batches {
  return function* (): Generator<Batch> {
    for (const batch of generateBatches(ctx.seed, ctx.rows, ctx.batchSize)) {
      yield [batch.first + batch.count, { batch: batch.index }, tagged(table, batch.rows())];
    }
  };
}
