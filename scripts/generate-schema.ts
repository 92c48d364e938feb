/**
 * Writes schema/batch.schema.json from the zod batch contract: the JSON Schema a producer in
 * another language validates against. Never edit the JSON by hand: `npm run schema`.
 * test/unit/batch-schema.test.ts fails when the committed file is out of date.
 */
import { writeFileSync } from 'node:fs';
import { batchJobJsonSchema } from '../src/queue/batch-schema.ts';

const path = new URL('../schema/batch.schema.json', import.meta.url);
writeFileSync(path, `${JSON.stringify(batchJobJsonSchema(), null, 2)}\n`);
console.log(`wrote ${path.pathname}`);
