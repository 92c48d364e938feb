/**
 * The high watermark lives in the first table's COMMENT, JSON-encoded exactly as the Python
 * library writes it, so either library can carry on a table the other wrote:
 *
 *   {"pg-bulk-ingest": {"high-watermark": <value>}}
 *
 * Other keys of the comment are kept. The JSON is formatted as Python's `json.dumps` does
 * (", " and ": " separators, non-ASCII escaped), so the comment text is the same byte for byte.
 */
import type pg from 'pg';
import { PgBulkIngestError } from '../errors.ts';
import type { Json } from './options.ts';
import { qualifiedName } from './sql.ts';

const KEY = 'pg-bulk-ingest';
const HIGH_WATERMARK_KEY = 'high-watermark';

export type ParsedComment = Record<string, unknown>;

export async function readTableComment(
  client: pg.ClientBase,
  schema: string,
  name: string,
): Promise<string | null> {
  const { rows } = await client.query<{ comment: string | null }>(
    `SELECT obj_description(c.oid, 'pg_class') AS comment
       FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
      WHERE n.nspname = $1 AND c.relname = $2 AND c.relkind IN ('r', 'p')`,
    [schema, name],
  );
  return rows[0]?.comment ?? null;
}

/** An empty or missing comment is `{}`; one that is not a JSON object is refused rather than overwritten. */
export function parseComment(comment: string | null, schema: string, name: string): ParsedComment {
  if (comment === null || comment.trim() === '') return {};
  let parsed: unknown;
  try {
    parsed = JSON.parse(comment);
  } catch {
    parsed = undefined;
  }
  if (parsed === null || typeof parsed !== 'object' || Array.isArray(parsed)) {
    throw new PgBulkIngestError(
      'INVALID_COMMENT',
      `The comment on ${qualifiedName(schema, name)} is not a JSON object, so the high watermark cannot be stored in it without losing it: ${JSON.stringify(comment.slice(0, 80))}`,
      { table: `${schema}.${name}` },
    );
  }
  return parsed as ParsedComment;
}

export function highWatermarkOf(comment: ParsedComment): Json | null {
  const ours = comment[KEY];
  if (ours === null || typeof ours !== 'object' || !(HIGH_WATERMARK_KEY in ours)) return null;
  return (ours as Record<string, Json>)[HIGH_WATERMARK_KEY] ?? null;
}

/** The comment text with the high watermark set and every other key kept. */
export function withHighWatermark(comment: ParsedComment, highWatermark: Json): string {
  const ours = comment[KEY];
  const merged = {
    ...comment,
    [KEY]: {
      ...(ours !== null && typeof ours === 'object' ? ours : {}),
      [HIGH_WATERMARK_KEY]: highWatermark,
    },
  };
  return pythonJsonDumps(merged);
}

/**
 * COMMENT takes only a literal, never a parameter. Rather than splice the value into SQL text,
 * pass it (and the relation) as parameters to `set_config` and let PL/pgSQL quote it with `%L`.
 */
export async function writeTableComment(client: pg.ClientBase, schema: string, name: string, text: string) {
  await client.query(
    `SELECT set_config('pg_bulk_ingest.comment_target', $1, true), set_config('pg_bulk_ingest.comment_text', $2, true)`,
    [qualifiedName(schema, name), text],
  );
  await client.query(`DO $pgbi$ BEGIN
    EXECUTE format('COMMENT ON TABLE %s IS %L',
      current_setting('pg_bulk_ingest.comment_target'), current_setting('pg_bulk_ingest.comment_text'));
  END $pgbi$`);
}

/** `json.dumps(value)` as Python writes it: `", "` and `": "` separators, `ensure_ascii=True`. */
export function pythonJsonDumps(value: unknown): string {
  if (value === null || value === undefined) return 'null';
  if (Array.isArray(value)) return `[${value.map(pythonJsonDumps).join(', ')}]`;
  if (typeof value === 'object') {
    const entries = Object.entries(value as Record<string, unknown>).filter(([, v]) => v !== undefined);
    return `{${entries.map(([k, v]) => `${asciiJsonString(k)}: ${pythonJsonDumps(v)}`).join(', ')}}`;
  }
  if (typeof value === 'string') return asciiJsonString(value);
  if (typeof value === 'number') {
    if (!Number.isFinite(value)) throw new TypeError(`A high watermark cannot hold ${value}`);
    return JSON.stringify(value);
  }
  if (typeof value === 'boolean') return value ? 'true' : 'false';
  throw new TypeError(`A high watermark must be JSON-encodable, got ${typeof value}`);
}

function asciiJsonString(text: string): string {
  return JSON.stringify(text).replace(
    /[\u007f-\uffff]/g,
    (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`,
  );
}
