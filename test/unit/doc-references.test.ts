/**
 * README.md and docs/*.md point only at what is in the repository (docs/queue.md once cited a
 * file outside it, and named a Lua file that never existed): every relative link, and every
 * file or folder named in backticks, exists in the repository; every #anchor is a heading.
 */
import assert from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { describe, it } from 'node:test';
import { documentedFiles, REPO_ROOT } from '../helpers/doc-blocks.ts';

/** Named in backticks but not files of the repository, each for a reason. */
const NOT_REPOSITORY_FILES: Record<string, string> = {
  'dist/': 'built by npm run build, not committed',
  'batch.json': "the user's own file in docs/batch-format.md's curl example",
};
const FILE_EXTENSIONS = /\.(ts|js|mjs|json|md|ya?ml|lua|sql|sh|csv|tsv|ndjson|jsonl|txt)$/;
const SKIPPED_DIRS = new Set(['node_modules', 'dist', '.git', 'out']);

/** Every file and folder of the repository, relative to its root, folders ending in '/'. */
function repositoryPaths(): string[] {
  const paths: string[] = [];
  const walk = (dir: string) => {
    for (const entry of readdirSync(join(REPO_ROOT, dir), { withFileTypes: true })) {
      if (SKIPPED_DIRS.has(entry.name)) continue;
      const path = dir ? `${dir}/${entry.name}` : entry.name;
      if (entry.isDirectory()) {
        paths.push(`${path}/`);
        walk(path);
      } else paths.push(path);
    }
  };
  walk('');
  return paths;
}

/** GitHub's anchor for a heading: lower case, punctuation dropped, spaces as hyphens. */
function anchorOf(heading: string): string {
  return heading
    .toLowerCase()
    .replace(/[^\p{L}\p{N} _-]/gu, '')
    .replaceAll(' ', '-');
}

/** Text outside fenced code blocks: examples may name the user's files and URLs freely. */
function prose(text: string): string {
  return text.replace(/^```[^\n]*\n[\s\S]*?^```$/gm, '');
}

describe('README.md and docs/ name only what exists in the repository', () => {
  const paths = repositoryPaths();
  const inRepository = (absolute: string) => !relative(REPO_ROOT, absolute).startsWith('..');

  for (const file of documentedFiles()) {
    const text = prose(readFileSync(join(REPO_ROOT, file), 'utf8'));
    const dir = dirname(join(REPO_ROOT, file));

    it(`${file}: relative links lead to files of the repository and #anchors to headings`, () => {
      const problems: string[] = [];
      for (const [, target = ''] of text.matchAll(/\]\(([^)\s]+)\)/g)) {
        if (/^[a-z]+:/.test(target)) continue; // https:, mailto:
        const [path = '', anchor] = target.split('#');
        const absolute = path === '' ? join(REPO_ROOT, file) : resolve(dir, path);
        if (!inRepository(absolute)) problems.push(`${target}: outside the repository`);
        else if (!existsSync(absolute)) problems.push(`${target}: no such file`);
        else if (anchor !== undefined && absolute.endsWith('.md')) {
          const headings = [...readFileSync(absolute, 'utf8').matchAll(/^#+ (.+)$/gm)].map((m) =>
            anchorOf(m[1] ?? ''),
          );
          if (!headings.includes(anchor)) problems.push(`${target}: no heading #${anchor}`);
        }
      }
      assert.deepEqual(problems, []);
    });

    it(`${file}: every file or folder named in backticks exists in the repository`, () => {
      const problems: string[] = [];
      for (const [, name = ''] of text.matchAll(/`([^`\s]+)`/g)) {
        const looksLikePath = FILE_EXTENSIONS.test(name) || name.includes('/');
        if (!looksLikePath || name.includes('://') || name.startsWith('/') || name in NOT_REPOSITORY_FILES)
          continue;
        // From the repository's root, from the document's folder, or a file named by its tail
        // (`ingest/merge.ts`); never a file outside the repository, even one that exists there.
        const found =
          [join(REPO_ROOT, name), resolve(dir, name)].some(
            (path) => inRepository(path) && existsSync(path),
          ) ||
          (!name.includes('..') && paths.some((path) => path === name || path.endsWith(`/${name}`)));
        if (!found) problems.push(`\`${name}\`: no such file or folder in the repository`);
      }
      assert.deepEqual(problems, []);
    });
  }
});
