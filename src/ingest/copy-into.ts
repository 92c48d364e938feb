/**
 * One COPY ... FROM STDIN through pg-copy-streams, with backpressure: `pipeline` only pulls the
 * next chunk from the row source when the socket has taken the previous one.
 */
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type pg from 'pg';
import { from as copyFrom } from 'pg-copy-streams';
import type { CopyChunk } from './batch-rows.ts';

export async function copyInto(
  client: pg.ClientBase,
  sql: string,
  chunks: AsyncIterable<CopyChunk>,
): Promise<number> {
  const copyStream = client.query(copyFrom(sql));
  // If the source throws (a bad row, the caller's generator failing), pipeline destroys the COPY
  // stream, which sends CopyFail: PostgreSQL aborts the COPY and the transaction must roll back.
  await pipeline(Readable.from(inBuffersOf(chunks), { objectMode: false }), copyStream);
  return copyStream.rowCount;
}

/** Bytes sent per CopyData message, at least: each message is two writes to the socket. */
const MESSAGE_BYTES = 64 * 1024;

/** The chunks as UTF-8, several to a Buffer: fewer, larger messages cost less on both sides. */
async function* inBuffersOf(chunks: AsyncIterable<CopyChunk>): AsyncGenerator<Uint8Array> {
  let parts: Uint8Array[] = [];
  let length = 0;
  for await (const chunk of chunks) {
    if (typeof chunk !== 'string' && length === 0 && chunk.length >= MESSAGE_BYTES / 2) {
      yield chunk; // a CopyBlock's lines, large enough as they are: not copied again
      continue;
    }
    const bytes = typeof chunk === 'string' ? Buffer.from(chunk) : chunk;
    parts.push(bytes);
    length += bytes.length;
    if (length >= MESSAGE_BYTES) {
      yield Buffer.concat(parts, length);
      parts = [];
      length = 0;
    }
  }
  if (length > 0) yield Buffer.concat(parts, length);
}

/**
 * Where in its COPY a PostgreSQL error happened, from the error's context line
 * `COPY <relation>, line <n>, column <name>: "<value>"`. The column is matched against the
 * names we sent, so names containing commas or colons are still found.
 */
export function copyErrorPosition(
  where: string | undefined,
  columnNames: readonly string[],
): { line?: number; column?: string } {
  const match = where ? /, line (\d+)(?:, column (.*))?/.exec(where) : null;
  if (!match) return {};
  const rest = match[2] ?? '';
  const column = columnNames.find((name) => rest.startsWith(`${name}:`) || rest === name);
  return { line: Number(match[1]), ...(column !== undefined ? { column } : {}) };
}
