/**
 * Fault injection for the chaos tests, off unless PGBI_TEST_FAULT is set, e.g.
 * `after-commit:0.2` kills the process (SIGKILL, as `kill -9`) with probability 0.2 right after
 * a batch's COMMIT and before anything else learns of it.
 */
import type { ApplyHooks } from '../../queue/apply-stream.ts';

export function faultFromEnvironment(): ApplyHooks['fault'] | undefined {
  const setting = process.env.PGBI_TEST_FAULT;
  if (!setting) return undefined;
  const [point, probability = '1'] = setting.split(':');
  const chance = Number(probability);
  return (at) => {
    if (at === point && Math.random() < chance) process.kill(process.pid, 'SIGKILL');
  };
}
