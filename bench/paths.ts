/**
 * Where the bench's files are, whether it runs compiled (`npm run bench` compiles src and bench
 * with tsconfig.bench.json into bench/out/build first) or from its TypeScript sources under tsx.
 * Child processes run the same way as the bench itself: compiled, they carry no TypeScript
 * loader, as in production (the Dockerfile runs dist/); under tsx, its loader thread alone adds
 * about 30-50 MB to every process's RSS.
 */
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const compiled = import.meta.url.endsWith('.js');

/** The repository root. Compiled, this file is bench/out/build/bench/paths.js. */
export const REPO = fileURLToPath(new URL(compiled ? '../../../../' : '../', import.meta.url));
export const OUT = join(REPO, 'bench/out');

/** A module of the repository, e.g. `src/ops/cli/main.ts`, as this run loads it. */
export function modulePath(fromRepo: string): string {
  return compiled ? join(OUT, 'build', fromRepo.replace(/\.ts$/, '.js')) : join(REPO, fromRepo);
}

/** Node arguments before a module path: the TypeScript loader when running from sources. */
export const NODE_LOADER: readonly string[] = compiled ? [] : ['--import', 'tsx'];
