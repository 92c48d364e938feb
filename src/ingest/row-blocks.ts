/**
 * Rows that arrive in blocks: an async source of synchronous row iterables, e.g. the queue
 * worker's rows, fetched from Redis a part at a time. BatchRows reads the rows of a block
 * without an `await` per row (which costs more than encoding the row, and allocates); anything
 * else sees an ordinary AsyncIterable<Row>. Internal: not part of the public API.
 */
import type { Row } from './options.ts';

export class RowBlocks implements AsyncIterable<Row> {
  readonly blocks: AsyncIterable<Iterable<Row>>;

  constructor(blocks: AsyncIterable<Iterable<Row>>) {
    this.blocks = blocks;
  }

  async *[Symbol.asyncIterator](): AsyncGenerator<Row> {
    for await (const block of this.blocks) yield* block;
  }
}
