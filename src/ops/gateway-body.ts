/**
 * Reading a request body within two bounds: its own size (GATEWAY_MAX_BODY_BYTES, 413 beyond)
 * and the bytes of all bodies the gateway holds at once (GATEWAY_MAX_INFLIGHT_BYTES, 503 with
 * Retry-After beyond). A body is held, as bytes, until its batch is enqueued; the batch's rows are
 * never built as a whole (batch-body.ts), so the gateway's memory is its baseline plus about the
 * in-flight budget, however many clients send at once.
 */
import type { IncomingMessage } from 'node:http';
import { HttpError } from './http-error.ts';

/** Bytes of request bodies held at once, across all requests. */
export class InflightBudget {
  readonly limit: number;
  #used = 0;

  constructor(limit: number) {
    this.limit = limit;
  }

  get used(): number {
    return this.#used;
  }

  /** Takes `bytes` if they fit; false (nothing taken) if they do not. */
  tryTake(bytes: number): boolean {
    if (this.#used + bytes > this.limit) return false;
    this.#used += bytes;
    return true;
  }

  give(bytes: number): void {
    this.#used -= bytes;
  }
}

export interface HeldBody {
  readonly bytes: Buffer;
  /** Gives the body's bytes back to the budget; call once the request is done with them. */
  release(): void;
}

export interface BodyLimits {
  /** Largest body, in bytes. */
  readonly maxBytes: number;
  readonly budget: InflightBudget;
  /** Seconds, for the Retry-After of a 503 when the budget is spent. */
  readonly retryAfterSeconds: number;
}

/**
 * The whole body, taken from the budget. With a Content-Length (what HTTP clients send for a
 * body they hold), the body is refused before any byte is read if it is too large or does not
 * fit in the budget, and it is read into one buffer of that size. Without one (chunked), each
 * chunk is taken as it arrives; at the end the chunks are joined, which for a moment holds the
 * body twice. Once refused, nothing more is read: the response closes the connection.
 */
export async function readBody(request: IncomingMessage, limits: BodyLimits): Promise<HeldBody> {
  const declared = Number(request.headers['content-length']);
  if (request.headers['content-length'] !== undefined && Number.isSafeInteger(declared)) {
    if (declared > limits.maxBytes) throw tooLarge(limits.maxBytes);
    if (!limits.budget.tryTake(declared)) throw busy(limits);
    try {
      return {
        bytes: await readInto(request, Buffer.allocUnsafe(declared)),
        release: once(limits, declared),
      };
    } catch (error) {
      limits.budget.give(declared);
      throw error;
    }
  }
  return readChunked(request, limits);
}

function readInto(request: IncomingMessage, target: Buffer): Promise<Buffer> {
  let length = 0;
  return consume(request, (chunk) => {
    // node:http delivers no more than Content-Length bytes; the check keeps copy() honest anyway.
    if (length + chunk.length > target.length) throw tooLarge(target.length);
    length += chunk.copy(target, length);
  }).then(() => target.subarray(0, length));
}

async function readChunked(request: IncomingMessage, limits: BodyLimits): Promise<HeldBody> {
  const chunks: Buffer[] = [];
  let length = 0;
  try {
    await consume(request, (chunk) => {
      if (length + chunk.length > limits.maxBytes) throw tooLarge(limits.maxBytes);
      if (!limits.budget.tryTake(chunk.length)) throw busy(limits);
      length += chunk.length;
      chunks.push(chunk);
    });
  } catch (error) {
    limits.budget.give(length);
    throw error;
  }
  return { bytes: Buffer.concat(chunks, length), release: once(limits, length) };
}

/** Feeds each chunk to `onChunk` until the body ends; a throw from it stops reading and rejects. */
function consume(request: IncomingMessage, onChunk: (chunk: Buffer) => void): Promise<void> {
  return new Promise((resolve, reject) => {
    const stop = () => {
      request.off('data', onData).off('end', onEnd).off('error', onError).off('close', onClose);
    };
    const fail = (error: unknown) => {
      stop();
      request.pause();
      reject(error);
    };
    const onData = (chunk: Buffer) => {
      try {
        onChunk(chunk);
      } catch (error) {
        fail(error);
      }
    };
    const onEnd = () => {
      stop();
      resolve();
    };
    // The client went away mid-body: no 'end' will come. Its fault, not the gateway's: a 400, not
    // a logged internal error (and nobody is left to read the answer).
    const gone = () =>
      new HttpError(400, 'INCOMPLETE_BODY', 'The client closed the connection before the body ended');
    const onError = () => fail(gone());
    const onClose = () => fail(gone());
    request.on('data', onData).on('end', onEnd).on('error', onError).on('close', onClose);
  });
}

function once(limits: BodyLimits, bytes: number): () => void {
  let released = false;
  return () => {
    if (released) return;
    released = true;
    limits.budget.give(bytes);
  };
}

function tooLarge(limit: number): HttpError {
  return new HttpError(
    413,
    'BODY_TOO_LARGE',
    `The body is larger than the gateway's limit of ${limit} bytes (GATEWAY_MAX_BODY_BYTES): split the batch into smaller ones`,
  );
}

function busy(limits: BodyLimits): HttpError {
  return new HttpError(
    503,
    'GATEWAY_BUSY',
    `The gateway already holds ${limits.budget.used} bytes of request bodies, its limit (GATEWAY_MAX_INFLIGHT_BYTES ${limits.budget.limit}) leaves no room for this one: retry after Retry-After seconds`,
    { 'retry-after': String(limits.retryAfterSeconds) },
  );
}
