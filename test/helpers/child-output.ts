/** The output (stdout and stderr) of any child process, kept whole, and a wait for a line of it. */
import type { ChildProcess } from 'node:child_process';
import { waitUntil } from './wait.ts';

export class ChildOutput {
  text = '';
  readonly #child: ChildProcess;

  constructor(child: ChildProcess) {
    this.#child = child;
    child.stdout?.on('data', (chunk) => {
      this.text += chunk;
    });
    child.stderr?.on('data', (chunk) => {
      this.text += chunk;
    });
  }

  /**
   * Resolves with the first match of `pattern` in the output; rejects with the output so far if
   * the process exits first or `timeoutMs` passes. Generous by default: under a loaded machine
   * (the whole suite on two cores) a process loading its sources through tsx takes many seconds.
   */
  waitFor(pattern: RegExp, timeoutMs = 90_000): Promise<RegExpExecArray> {
    return waitUntil(
      `${pattern} in its output`,
      () => {
        const match = pattern.exec(this.text);
        if (match) return match;
        const { exitCode, signalCode } = this.#child;
        if (exitCode !== null || signalCode !== null)
          throw new Error(`exited (${exitCode ?? signalCode}) before printing ${pattern}:\n${this.text}`);
        return undefined;
      },
      { timeoutMs, explain: () => this.text },
    );
  }
}
