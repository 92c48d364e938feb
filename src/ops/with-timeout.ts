/**
 * A promise that rejects when `promise` has not settled within `ms`: for a health check or a
 * metrics scrape that must answer even when Redis or PostgreSQL does not. The timer is cleared
 * as soon as `promise` settles, so a fast answer leaves nothing pending that would keep the
 * process alive.
 */
export function withTimeout<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} within ${ms} ms`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}
