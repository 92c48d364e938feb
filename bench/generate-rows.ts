/**
 * The benchmark's rows: (bigint pk, timestamp, varchar(64), numeric(12,2), jsonb). Every row is a pure function of (seed, index), so rows are
 * generated lazily, batch by batch, never held all at once; the same rows can be written to a
 * COPY text file for `psql \copy`.
 *
 * Ids are 1..rows whatever the seed: a second seed gives the same keys with other values (used to
 * pre-fill tables for the all-conflicts upsert runs).
 */
import { open } from 'node:fs/promises';
import { defineTable, type IngestTable } from '../src/index.ts';

export type BenchRow = [id: number, at: Date, name: string, amount: number, payload: BenchPayload];

export interface BenchPayload {
  id: number;
  kind: string;
  score: number;
  tags: [string, string];
  active: boolean;
}

export const TABLE_NAME = 'rows';

/** The table every method writes to (in its own schema). */
export function benchTable(schema: string): IngestTable {
  return defineTable({
    schema,
    name: TABLE_NAME,
    columns: [
      { name: 'id', type: 'bigint', primaryKey: true },
      { name: 'at', type: 'timestamp' },
      { name: 'name', type: 'varchar(64)' },
      { name: 'amount', type: 'numeric(12,2)' },
      { name: 'payload', type: 'jsonb' },
    ],
  });
}

export const COLUMN_NAMES = ['id', 'at', 'name', 'amount', 'payload'] as const;

// A few non-ASCII words so multi-byte UTF-8 is part of the load, as in real data.
const WORDS = [
  'alpha',
  'bravo',
  'charlie',
  'delta',
  'echo',
  'foxtrot',
  'golf',
  'hotel',
  'india',
  'juliett',
  'kilo',
  'lima',
  'mike',
  'november',
  'oscar',
  'papa',
  'quebec',
  'romeo',
  'sierra',
  'tango',
  'uniform',
  'victor',
  'whiskey',
  'xray',
  'yankee',
  'zulu',
  'amber',
  'basalt',
  'cobalt',
  'dune',
  'ember',
  'fjord',
  'granite',
  'harbour',
  'iris',
  'jade',
  'kelp',
  'lagoon',
  'meadow',
  'nectar',
  'onyx',
  'pebble',
  'quartz',
  'river',
  'saffron',
  'thistle',
  'umber',
  'velvet',
  'willow',
  'xenon',
  'yarrow',
  'zephyr',
  'café',
  'naïve',
  'Zürich',
  'São Paulo',
  'Kraków',
  'Ελλάδα',
  'Москва',
  '東京',
  '서울',
  'العربية',
  'crème brûlée',
  'smörgåsbord',
];
const KINDS = ['order', 'refund', 'invoice', 'payment', 'credit', 'debit', 'transfer', 'fee'];
const EPOCH_MS = Date.UTC(2020, 0, 1);

let state = 0;
/** mulberry32: a tiny, fast, well-mixed 32-bit PRNG. */
function next(): number {
  state = (state + 0x6d2b79f5) | 0;
  let t = Math.imul(state ^ (state >>> 15), 1 | state);
  t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
  return (t ^ (t >>> 14)) >>> 0;
}

/** Row `index` (0-based) of the data set `seed`. */
export function rowAt(seed: number, index: number): BenchRow {
  state = Math.imul(seed ^ 0x5bd1e995, 0x9e3779b1) ^ Math.imul(index + 1, 0x85ebca6b);
  next();
  const id = index + 1;
  const a = next();
  const b = next();
  const at = new Date(EPOCH_MS + index * 30_000 + (a % 30_000));
  const name = `${WORDS[a % WORDS.length]} ${WORDS[b % WORDS.length]} ${WORDS[(a >>> 8) % WORDS.length]} ${id}`;
  const amount = next() / 100; // 0 .. 42,949,672.95: at most two decimals, fits numeric(12,2)
  const payload: BenchPayload = {
    id,
    kind: KINDS[b & 7] as string,
    score: (b >>> 4) / 1000,
    tags: [WORDS[(b >>> 8) % WORDS.length] as string, WORDS[(b >>> 16) % WORDS.length] as string],
    active: (a & 1) === 1,
  };
  return [id, at, name, amount, payload];
}

/** Rows `first` .. `first + count - 1`, generated one at a time. */
export function* generateRows(seed: number, first: number, count: number): Generator<BenchRow> {
  for (let i = first; i < first + count; i++) yield rowAt(seed, i);
}

export interface RowBatch {
  /** 0-based index of the batch. */
  readonly index: number;
  /** Index of the batch's first row. */
  readonly first: number;
  readonly count: number;
  /** The batch's rows, generated lazily (call once per use). */
  rows(): Generator<BenchRow>;
}

/** `rows` rows in batches of `batchSize`; nothing is generated until a batch's rows are read. */
export function* generateBatches(seed: number, rows: number, batchSize: number): Generator<RowBatch> {
  for (let first = 0, index = 0; first < rows; first += batchSize, index++) {
    const count = Math.min(batchSize, rows - first);
    yield { index, first, count, rows: () => generateRows(seed, first, count) };
  }
}

const NEEDS_ESCAPE = /[\\\n\r\t]/g;
const ESCAPES: Record<string, string> = { '\\': '\\\\', '\n': '\\n', '\r': '\\r', '\t': '\\t' };
function escapeText(text: string): string {
  return text.replace(NEEDS_ESCAPE, (c) => ESCAPES[c] as string);
}

/** One row as a line of COPY text format (the bench's own encoder, independent of the library's). */
export function copyLine([id, at, name, amount, payload]: BenchRow): string {
  return `${id}\t${at.toISOString()}\t${escapeText(name)}\t${amount}\t${escapeText(JSON.stringify(payload))}\n`;
}

/** Writes rows 0 .. rows-1 of `seed` as a COPY text file; returns its size in bytes. */
export async function writeCopyFile(path: string, seed: number, rows: number): Promise<number> {
  const file = await open(path, 'w');
  let bytes = 0;
  try {
    let chunk = '';
    for (const row of generateRows(seed, 0, rows)) {
      chunk += copyLine(row);
      if (chunk.length >= 1 << 20) {
        bytes += (await file.write(chunk)).bytesWritten;
        chunk = '';
      }
    }
    if (chunk.length > 0) bytes += (await file.write(chunk)).bytesWritten;
  } finally {
    await file.close();
  }
  return bytes;
}
