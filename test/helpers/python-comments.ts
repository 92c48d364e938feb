/**
 * What the Python library pg-bulk-ingest wrote as the table comment, case by case
 * (test/fixtures/python-comments.json: its `about` says how it was made).
 */
import { readFileSync } from 'node:fs';

export interface PythonCase {
  readonly name: string;
  /** The comment before ingest() ran; null: none. */
  readonly initial: string | null;
  /** JSON text of the high watermark `batches()` yielded. */
  readonly value: string;
  /** The comment Python wrote... */
  readonly comment?: string;
  /** ...or what it raised instead. */
  readonly error?: string;
}

export const pythonCases: readonly PythonCase[] = JSON.parse(
  readFileSync(new URL('../fixtures/python-comments.json', import.meta.url), 'utf8'),
).cases;

/** Where this library refuses what the Python library silently overwrites (docs/under-the-hood.md). */
export const commentRefusedHere: Readonly<Record<string, string>> = {
  'existing non-JSON comment': 'INVALID_COMMENT',
};

/**
 * Watermarks the Python library stores and this one refuses before anything is written: jsonb
 * (where the queue keeps the same watermark) cannot hold `\u0000` or a lone surrogate.
 */
export const watermarkRefusedHere: Readonly<Record<string, string>> = {
  escapes: 'INVALID_JSON_VALUE',
  'lone surrogate': 'INVALID_JSON_VALUE',
};
