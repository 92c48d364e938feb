/**
 * The fenced code blocks of README.md and docs/*.md, with the marker comment on the line right
 * before each: `<!-- example: <id> -->` (a test runs the block: it finds it by that id with
 * `exampleBlock`) or `<!-- illustrative -->` (shown, not run). Tests read the examples from the
 * docs at run time, so there is no second copy of an example that can drift from the docs.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';

export const REPO_ROOT = join(import.meta.dirname, '..', '..');

/** The documents whose examples must run or be marked illustrative, relative to the repository. */
export function documentedFiles(): string[] {
  const docs = readdirSync(join(REPO_ROOT, 'docs'))
    .filter((name) => name.endsWith('.md'))
    .sort()
    .map((name) => `docs/${name}`);
  return ['README.md', ...docs];
}

export type BlockMarker =
  | { readonly kind: 'example'; readonly id: string }
  | { readonly kind: 'illustrative' };

export interface DocBlock {
  /** Relative to the repository, e.g. `docs/batch-format.md`. */
  readonly file: string;
  /** 1-based line of the opening fence. */
  readonly line: number;
  /** The fence's info string (`ts`, `sh`, `json`, ...), '' when there is none. */
  readonly lang: string;
  readonly code: string;
  readonly marker: BlockMarker | null;
}

const FENCE = /^```(\S*)\s*$/;
const EXAMPLE_MARKER = /^<!--\s*example:\s*([\w-]+)\s*-->$/;
const ILLUSTRATIVE_MARKER = /^<!--\s*illustrative\s*-->$/;

export function docBlocks(file: string): DocBlock[] {
  const lines = readFileSync(join(REPO_ROOT, file), 'utf8').split('\n');
  const blocks: DocBlock[] = [];
  for (let i = 0; i < lines.length; i++) {
    const open = FENCE.exec(lines[i] ?? '');
    if (!open) continue;
    const start = i;
    const body: string[] = [];
    for (i += 1; i < lines.length && !/^```\s*$/.test(lines[i] ?? ''); i++) body.push(lines[i] ?? '');
    const before = (lines[start - 1] ?? '').trim();
    const example = EXAMPLE_MARKER.exec(before);
    blocks.push({
      file,
      line: start + 1,
      lang: open[1] ?? '',
      code: `${body.join('\n')}\n`,
      marker: example?.[1]
        ? { kind: 'example', id: example[1] }
        : ILLUSTRATIVE_MARKER.test(before)
          ? { kind: 'illustrative' }
          : null,
    });
  }
  return blocks;
}

/** The block marked `<!-- example: <id> -->` in `file`; throws if there is not exactly one. */
export function exampleBlock(file: string, id: string): DocBlock {
  const found = docBlocks(file).filter((b) => b.marker?.kind === 'example' && b.marker.id === id);
  if (found.length !== 1)
    throw new Error(`${file}: expected one block marked "example: ${id}", found ${found.length}`);
  return found[0] as DocBlock;
}
