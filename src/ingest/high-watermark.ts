/**
 * The high watermark lives in the first table's COMMENT, JSON-encoded exactly as the Python
 * library writes it, so either library can carry on a table the other wrote:
 *
 *   {"pg-bulk-ingest": {"high-watermark": <value>}}
 *
 * The comment is rewritten byte for byte as Python's `json.dumps` writes it (exact-json.ts):
 * every other key kept in its place (integer-like keys too), integers of any size exactly,
 * floats as Python formats them, `", "`/`": "` separators, non-ASCII escaped. The cases come
 * from running the Python library (test/unit/python-comments.test.ts).
 *
 * Where the Python library would silently replace a comment that is not JSON, or raise on one
 * that is JSON but not an object of objects, this library refuses with INVALID_COMMENT: a
 * hand-written comment is never lost silently.
 */
import type pg from 'pg';
import { PgBulkIngestError } from '../errors.ts';
import { type ExactJson, JsonObject, parseExactJson, pythonJsonDumps, toPlainJson } from './exact-json.ts';
import { TABLE_BY_NAME } from './live-table.ts';
import type { Json } from './options.ts';
import { qualifiedName } from './sql.ts';

const KEY = 'pg-bulk-ingest';
const HIGH_WATERMARK_KEY = 'high-watermark';

/** A parsed comment: its keys in order, its numbers as written. */
export type ParsedComment = JsonObject;

export async function readTableComment(
  client: pg.ClientBase,
  schema: string,
  name: string,
): Promise<string | null> {
  const { rows } = await client.query<{ comment: string | null }>(
    `SELECT obj_description(c.oid, 'pg_class') AS comment FROM pg_class c WHERE ${TABLE_BY_NAME}`,
    [schema, name],
  );
  return rows[0]?.comment ?? null;
}

/**
 * An empty or missing comment is `{}`. One that is not a JSON object, or whose "pg-bulk-ingest"
 * key is not an object, is refused rather than overwritten (Python overwrites the first, raises
 * on the second).
 */
export function parseComment(comment: string | null, schema: string, name: string): ParsedComment {
  if (comment === null || comment.trim() === '') return new JsonObject();
  let parsed: ExactJson | undefined;
  try {
    parsed = parseExactJson(comment, { pythonLiterals: true });
  } catch {
    parsed = undefined;
  }
  const ours = parsed instanceof JsonObject ? parsed.get(KEY) : undefined;
  if (!(parsed instanceof JsonObject) || (parsed.has(KEY) && !(ours instanceof JsonObject))) {
    const why = !(parsed instanceof JsonObject)
      ? 'is not a JSON object'
      : `has a "${KEY}" key that is not a JSON object`;
    throw new PgBulkIngestError(
      'INVALID_COMMENT',
      `The comment on ${qualifiedName(schema, name)} ${why}, so the high watermark cannot be stored in it without losing it: ${JSON.stringify(comment.slice(0, 80))}`,
      { table: `${schema}.${name}` },
    );
  }
  return parsed;
}

/** The stored high watermark as ordinary JavaScript (a bigint for an unsafe integer), or null. */
export function highWatermarkOf(comment: ParsedComment): Json | null {
  const ours = comment.get(KEY);
  if (!(ours instanceof JsonObject)) return null;
  return (toPlainJson(ours.get(HIGH_WATERMARK_KEY) ?? null) as Json | null) ?? null;
}

/** The comment text with the high watermark set and every other key kept, in place. */
export function withHighWatermark(comment: ParsedComment, highWatermark: unknown): string {
  const merged = new JsonObject(comment);
  const ours = merged.get(KEY);
  const updated = new JsonObject(ours instanceof JsonObject ? ours : []);
  updated.set(HIGH_WATERMARK_KEY, highWatermark as ExactJson);
  merged.set(KEY, updated);
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
