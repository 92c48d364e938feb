/**
 * Example producer: the synthetic orders feed (customers, orders, order_events, with updates to
 * earlier rows) that `pg-bulk-ingest demo` streams and the benchmarks can use.
 *
 *   REDIS_URL=redis://127.0.0.1:6379 node --import tsx producers/synthetic-generator.ts [schema] [batches] [ordersPerBatch]
 *
 * The generator lives in src/ops/demo/synthetic-feed.ts (the built CLI's demo needs it); this
 * file re-exports it and enqueues a fixed number of batches on both of its streams. It resumes:
 * each stream starts after its high watermark `{ batch, at }`, so running it again with a larger
 * `batches` only sends the batches not yet sent.
 */
import { resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { syntheticFeed } from '../src/ops/demo/synthetic-feed.ts';
import { type EnqueueResult, Producer } from '../src/queue/producer.ts';

export {
  type SyntheticBatchMetadata,
  type SyntheticFeed,
  type SyntheticFeedOptions,
  type SyntheticStream,
  syntheticFeed,
  syntheticTables,
} from '../src/ops/demo/synthetic-feed.ts';

/** Enqueues batches 1..`batches` of both streams (those not yet enqueued); results per stream. */
export async function produceSynthetic(
  producer: Producer,
  options: { schema?: string; batches: number; ordersPerBatch?: number; seed?: number },
): Promise<EnqueueResult[][]> {
  const feed = syntheticFeed(options);
  return Promise.all(feed.streams.map((stream) => producer.ingest(stream.tables, stream.batches)));
}

async function main(argv: string[]) {
  const [schema = 'demo', batches = '10', ordersPerBatch = '100'] = argv;
  // The example reads REDIS_URL (and PGBI_QUEUE, PGBI_PREFIX) as the CLI does; the library itself reads no environment.
  const producer = new Producer({
    redis: process.env.REDIS_URL ?? 'redis://127.0.0.1:6379',
    ...(process.env.PGBI_QUEUE ? { queueName: process.env.PGBI_QUEUE } : {}),
    ...(process.env.PGBI_PREFIX ? { prefix: process.env.PGBI_PREFIX } : {}),
  });
  try {
    const results = await produceSynthetic(producer, {
      schema,
      batches: Number(batches),
      ordersPerBatch: Number(ordersPerBatch),
    });
    for (const stream of results) {
      process.stdout.write(
        stream.length === 0
          ? 'A stream was already complete\n'
          : `${stream[0]?.stream}: enqueued ${stream.length} batches\n`,
      );
    }
  } finally {
    await producer.close();
  }
}

if (process.argv[1] && import.meta.url === pathToFileURL(resolve(process.argv[1])).href)
  await main(process.argv.slice(2));
