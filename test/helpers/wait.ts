/**
 * Waiting for something another process or connection does: the tests' one polling loop.
 */
import { setTimeout as sleep } from 'node:timers/promises';

export interface WaitOptions {
  /** @default 20_000 */
  readonly timeoutMs?: number;
  /** @default 50 */
  readonly intervalMs?: number;
  /** What to add to the timeout's message: the state that was not reached, a process's output. */
  readonly explain?: () => Promise<string> | string;
}

/**
 * Calls `probe` until it returns a truthy value, and returns that value. After `timeoutMs`,
 * throws "Timed out after <timeoutMs> ms waiting for <what>" (with what `explain` says). An error
 * `probe` throws ends the wait at once.
 */
export async function waitUntil<T>(
  what: string,
  probe: () => Promise<T> | T,
  options: WaitOptions = {},
): Promise<NonNullable<T>> {
  const { timeoutMs = 20_000, intervalMs = 50, explain } = options;
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value) return value as NonNullable<T>;
    if (Date.now() > deadline)
      throw new Error(
        `Timed out after ${timeoutMs} ms waiting for ${what}${explain ? `: ${await explain()}` : ''}`,
      );
    await sleep(intervalMs);
  }
}
