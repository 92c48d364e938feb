/**
 * Every example in README.md and docs/*.md runs in a test or says it is illustrative,
 * and docs/batch-format.md's batch is POSTed to a real gateway with the curl command the doc
 * shows, both read from the doc at run time.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { promisify } from 'node:util';
import { ChildOutput } from '../helpers/child-output.ts';
import { startCli } from '../helpers/cli.ts';
import { docBlocks, documentedFiles, exampleBlock, REPO_ROOT } from '../helpers/doc-blocks.ts';
import { DATABASE_URL } from '../helpers/pg.ts';
import { cleanQueue, REDIS_URL, uniqueQueue } from '../helpers/queue.ts';

const run = promisify(execFile);
/** Languages of runnable examples; a block in another language (`text`, `sql`) is a picture. */
const EXAMPLE_LANGUAGES = new Set(['sh', 'bash', 'shell', 'ts', 'typescript', 'js', 'javascript', 'json']);

/** Every test file's text but this helper's, to find where an example id is used. */
function testSources(): string {
  const texts: string[] = [];
  const walk = (dir: string) => {
    for (const entry of readdirSync(dir, { withFileTypes: true })) {
      const path = join(dir, entry.name);
      if (entry.isDirectory()) walk(path);
      else if (entry.name.endsWith('.test.ts')) texts.push(readFileSync(path, 'utf8'));
    }
  };
  walk(join(REPO_ROOT, 'test'));
  return texts.join('\n');
}

describe('documented examples', () => {
  it('every sh/ts/json block in README.md and docs/ is run by a test (<!-- example: id -->) or marked <!-- illustrative -->', () => {
    const sources = testSources();
    const problems: string[] = [];
    const ids = new Set<string>();
    for (const file of documentedFiles()) {
      for (const block of docBlocks(file)) {
        const where = `${file}:${block.line}`;
        if (block.lang === '')
          problems.push(`${where}: a code block without a language (\`\`\`sh, \`\`\`text, ...)`);
        else if (!EXAMPLE_LANGUAGES.has(block.lang)) continue;
        else if (block.marker === null)
          problems.push(
            `${where}: a ${block.lang} example neither run by a test nor marked <!-- illustrative -->`,
          );
        else if (block.marker.kind === 'example') {
          const { id } = block.marker;
          if (ids.has(id)) problems.push(`${where}: example id "${id}" used twice`);
          ids.add(id);
          if (!sources.includes(`'${id}'`)) problems.push(`${where}: no test runs example "${id}"`);
        }
      }
    }
    assert.deepEqual(problems, []);
  });

  describe("docs/batch-format.md's batch, POSTed to `pg-bulk-ingest gateway` with the doc's curl command", () => {
    const dir = mkdtempSync(join(tmpdir(), 'pgbi-curl-'));
    const names = uniqueQueue();
    after(async () => {
      rmSync(dir, { recursive: true, force: true });
      await cleanQueue(names);
    });

    it('is accepted (202) and enqueued as seq 1 of stream shop.orders', async () => {
      const token = 'docs-example-token-0123456789';
      const { child: gateway, done } = startCli(['gateway', '--port', '0', '--host', '127.0.0.1'], {
        connection: { databaseUrl: DATABASE_URL, redisUrl: REDIS_URL, ...names },
        env: { GATEWAY_TOKEN: token },
      });
      const log = new ChildOutput(gateway);
      try {
        const url = (await log.waitFor(/"url":"(http:\/\/127\.0\.0\.1:\d+)"/))[1] as string;
        writeFileSync(
          join(dir, 'batch.json'),
          exampleBlock('docs/batch-format.md', 'batch-format-json').code,
        );
        const curl = exampleBlock('docs/batch-format.md', 'batch-format-curl').code;
        const { stdout } = await run('sh', ['-c', curl], {
          cwd: dir,
          env: { ...process.env, PGBI_GATEWAY: url, PGBI_TOKEN: token },
        });
        assert.deepEqual(JSON.parse(stdout), { stream: 'shop.orders', seq: 1, duplicate: false });
        gateway.kill('SIGTERM');
        assert.equal((await done).code, 0, log.text);
      } finally {
        gateway.kill('SIGKILL');
      }
    });
  });
});
