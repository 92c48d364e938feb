/** The batch contract as JSON Schema, generated from the zod schema (never written by hand). */
import { z } from 'zod';
import { BATCH_FORMAT_VERSION, batchJobSchema } from './batch-contract.ts';

export function batchJobJsonSchema(): Record<string, unknown> {
  // `input`: what a producer may send (fields with defaults are optional).
  const schema = z.toJSONSchema(batchJobSchema, {
    io: 'input',
    unrepresentable: 'any',
    // A bigint (a JSON integer beyond 2^53, which this package reads exactly) is a JSON integer.
    override: (ctx) => {
      if (ctx.zodSchema._zod.def.type === 'bigint') ctx.jsonSchema.type = 'integer';
    },
  });
  return {
    ...schema,
    $id: `https://pg-bulk-ingest.invalid/schema/batch-v${BATCH_FORMAT_VERSION}.json`,
    title: `pg-bulk-ingest batch, format version ${BATCH_FORMAT_VERSION}`,
    description:
      'One batch for the pg-bulk-ingest queue. Rows are ["schema.table", [values in column order]]. ' +
      'Values per column type: bytea as base64 or \\x-prefixed hex; bigint and numeric as strings where a JSON number ' +
      'would lose precision; dates and timestamps as ISO 8601 strings; json/jsonb as any JSON. See docs/batch-format.md.',
  };
}
