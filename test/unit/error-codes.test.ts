/** docs/operations.md lists every error code with its meaning, exactly as src/errors.ts has them. */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import { ERROR_CODES } from '../../src/index.ts';

describe('error codes', () => {
  it('are documented in docs/operations.md, each with its meaning', () => {
    const doc = readFileSync(new URL('../../docs/operations.md', import.meta.url), 'utf8');
    const section = doc.slice(doc.indexOf('## Error codes'), doc.indexOf('## Settings of every command'));
    const documented = Object.fromEntries(
      [...section.matchAll(/^\| `([A-Z_]+)` \| (.*) \|$/gm)].map((m) => [
        m[1],
        (m[2] as string).replaceAll('\\|', '|'),
      ]),
    );
    assert.deepEqual(documented, { ...ERROR_CODES });
  });
});
