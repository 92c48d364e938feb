/**
 * A deterministic, realistic feed for the demo and the benchmarks: an online shop's customers,
 * orders and order events, with updates to earlier rows (orders move through paid, shipped and
 * delivered or get cancelled; customers change tier). Two streams, each a `batches(highWatermark)`
 * function as `ingest()` and `Producer.ingest()` take:
 *
 * - `<schema>.customers`: new customers, and tier changes of earlier ones;
 * - `<schema>.orders`: tables orders and order_events together, so an order's new status and
 *   the event that explains it commit in one transaction.
 *
 * Batch n of a stream is a pure function of (seed, n): the feed resumes from any high
 * watermark (`{batch, at}`) and two runs with one seed produce the same rows. Time is simulated:
 * batch n happens 10 seconds after batch n - 1.
 */
import type { Batch, Batches, Json, Row } from '../../ingest/options.ts';
import { defineTable, type IngestTable } from '../../ingest/table-definition.ts';
import { hash, mulberry32 } from './deterministic-random.ts';

export interface SyntheticFeedOptions {
  /** @default 'demo' */
  readonly schema?: string;
  /** @default 42 */
  readonly seed?: number;
  /** New orders per batch of the orders stream; the customers stream gets a quarter as many new customers. @default 100 */
  readonly ordersPerBatch?: number;
  /** Batches per stream, then the feed ends; undefined never ends. */
  readonly batches?: number;
  /** Simulated time of batch 1. @default 2024-01-01T00:00:00Z */
  readonly start?: Date;
}

/** What each batch's metadata says: rows added and rows updated per table. */
export interface SyntheticBatchMetadata {
  readonly [key: string]: Json;
  readonly batch: number;
  readonly inserted: { readonly [table: string]: number };
  readonly updated: { readonly [table: string]: number };
}

export interface SyntheticStream {
  /** `schema.table` of its first table: the stream's default name. */
  readonly name: string;
  readonly tables: readonly IngestTable[];
  readonly batches: Batches;
}

export interface SyntheticFeed {
  readonly tables: {
    readonly customers: IngestTable;
    readonly orders: IngestTable;
    readonly orderEvents: IngestTable;
  };
  readonly streams: readonly [customers: SyntheticStream, orders: SyntheticStream];
}

const FIRST = 'Ada Alan Grace Edsger Barbara Donald Frances Ken Radia Niklaus Margaret Tony'.split(' ');
const LAST = 'Lovelace Turing Hopper Dijkstra Liskov Knuth Allen Thompson Perlman Wirth Hamilton Hoare'.split(
  ' ',
);
const COUNTRIES = ['GB', 'FR', 'DE', 'NL', 'US', 'CA', 'JP', 'BR', 'IN', 'ES'];
const TIERS = ['bronze', 'silver', 'gold'];
const CURRENCIES = ['EUR', 'USD', 'GBP'];
const CARRIERS = ['DHL', 'UPS', 'La Poste', 'Royal Mail'];
const STAGES = ['created', 'paid', 'shipped', 'delivered', 'cancelled'] as const;
type Stage = (typeof STAGES)[number];
/** The longest an order takes from created to delivered, in batches (see orderPlan). */
const MAX_LIFETIME = 14;
const BATCH_SECONDS = 10;

export function syntheticTables(schema = 'demo'): SyntheticFeed['tables'] {
  const at = (name: string) => ({ name, type: 'timestamptz', nullable: false });
  return {
    customers: defineTable({
      schema,
      name: 'customers',
      columns: [
        { name: 'id', type: 'bigint', primaryKey: true },
        { name: 'name', type: 'text', nullable: false },
        { name: 'email', type: 'text', nullable: false },
        { name: 'country', type: 'char(2)' },
        { name: 'tier', type: 'text', nullable: false },
        at('created_at'),
        at('updated_at'),
      ],
    }),
    orders: defineTable({
      schema,
      name: 'orders',
      columns: [
        { name: 'id', type: 'bigint', primaryKey: true },
        { name: 'customer_id', type: 'bigint', nullable: false, index: true },
        { name: 'status', type: 'text', nullable: false },
        { name: 'total', type: 'numeric(12,2)', nullable: false },
        { name: 'currency', type: 'char(3)', nullable: false },
        { name: 'items', type: 'jsonb', nullable: false },
        at('created_at'),
        at('updated_at'),
      ],
    }),
    orderEvents: defineTable({
      schema,
      name: 'order_events',
      columns: [
        { name: 'id', type: 'bigint', primaryKey: true },
        { name: 'order_id', type: 'bigint', nullable: false, index: true },
        { name: 'type', type: 'text', nullable: false },
        { name: 'detail', type: 'jsonb' },
        at('at'),
      ],
    }),
  };
}

export function syntheticFeed(options: SyntheticFeedOptions = {}): SyntheticFeed {
  const tables = syntheticTables(options.schema);
  const seed = options.seed ?? 42;
  const perBatch = options.ordersPerBatch ?? 100;
  const shape = {
    seed,
    orders: perBatch,
    customers: Math.max(1, Math.ceil(perBatch / 4)),
    start: (options.start ?? new Date('2024-01-01T00:00:00Z')).getTime(),
  };
  const stream = (
    streamTables: IngestTable[],
    batch: (n: number) => [Row[], SyntheticBatchMetadata],
  ): SyntheticStream => ({
    name: `${streamTables[0]?.schema}.${streamTables[0]?.name}`,
    tables: streamTables,
    batches: function* (highWatermark: Json | null): Generator<Batch> {
      const after = (highWatermark as { batch?: unknown } | null)?.batch;
      for (
        let n = typeof after === 'number' ? after + 1 : 1;
        options.batches === undefined || n <= options.batches;
        n++
      ) {
        const [rows, metadata] = batch(n);
        yield [{ batch: n, at: new Date(timeOf(shape, n)).toISOString() }, metadata, rows];
      }
    },
  });
  return {
    tables,
    streams: [
      stream([tables.customers], (n) => customersBatch(tables, shape, n)),
      stream([tables.orders, tables.orderEvents], (n) => ordersBatch(tables, shape, n)),
    ],
  };
}

interface Shape {
  readonly seed: number;
  readonly orders: number;
  readonly customers: number;
  readonly start: number;
}

function customersBatch(
  tables: SyntheticFeed['tables'],
  shape: Shape,
  n: number,
): [Row[], SyntheticBatchMetadata] {
  const rows: Row[] = [];
  const now = iso(timeOf(shape, n));
  for (let i = 0; i < shape.customers; i++) {
    const id = (n - 1) * shape.customers + i + 1;
    const created = iso(timeOf(shape, n) + i * 10);
    rows.push([tables.customers, customerValues(shape.seed, id, TIERS[0] as string, created, created)]);
  }
  // Tier changes of a fifth as many earlier customers, chosen by the batch's own random numbers.
  const earlier = (n - 1) * shape.customers;
  const changed = new Set<number>();
  const random = mulberry32(hash(shape.seed, 1, n));
  for (
    let tries = 0;
    earlier > 0 && changed.size < Math.min(earlier, Math.ceil(shape.customers / 5)) && tries < 1000;
    tries++
  ) {
    changed.add(1 + Math.floor(random() * earlier));
  }
  for (const id of [...changed].sort((a, b) => a - b)) {
    const created = iso(timeOf(shape, Math.ceil(id / shape.customers)) + ((id - 1) % shape.customers) * 10);
    const tier = TIERS[hash(shape.seed, id, n) % TIERS.length] as string;
    rows.push([tables.customers, customerValues(shape.seed, id, tier, created, now)]);
  }
  return [rows, { batch: n, inserted: { customers: shape.customers }, updated: { customers: changed.size } }];
}

function customerValues(seed: number, id: number, tier: string, created: string, updated: string): unknown[] {
  const h = hash(seed, 2, id);
  const first = FIRST[h % FIRST.length] as string;
  const last = LAST[(h >>> 8) % LAST.length] as string;
  return [
    id,
    `${first} ${last}`,
    `${first}.${last}.${id}@example.com`.toLowerCase(),
    COUNTRIES[(h >>> 16) % COUNTRIES.length],
    tier,
    created,
    updated,
  ];
}

function ordersBatch(
  tables: SyntheticFeed['tables'],
  shape: Shape,
  n: number,
): [Row[], SyntheticBatchMetadata] {
  const rows: Row[] = [];
  let updates = 0;
  for (let i = 0; i < shape.orders; i++) {
    const id = (n - 1) * shape.orders + i + 1;
    rows.push([tables.orders, orderValues(shape, id, 'created', n)]);
    rows.push([tables.orderEvents, eventValues(shape, id, 'created', n)]);
  }
  // Earlier orders whose next stage falls on this batch.
  const from = Math.max(1, n - MAX_LIFETIME) - 1;
  for (let id = from * shape.orders + 1; id <= (n - 1) * shape.orders; id++) {
    const stage = orderPlan(shape, id).find(([, at]) => at === n)?.[0];
    if (stage === undefined) continue;
    updates += 1;
    rows.push([tables.orders, orderValues(shape, id, stage, n)]);
    rows.push([tables.orderEvents, eventValues(shape, id, stage, n)]);
  }
  return [
    rows,
    {
      batch: n,
      inserted: { orders: shape.orders, order_events: shape.orders + updates },
      updated: { orders: updates },
    },
  ];
}

/** When order `id` reaches each stage, in batches: paid (or 8% cancelled), shipped, delivered. */
function orderPlan(shape: Shape, id: number): [Stage, number][] {
  const h = hash(shape.seed, 3, id);
  const created = Math.ceil(id / shape.orders);
  const paid = created + 1 + (h % 3);
  if ((h >>> 4) % 100 < 8)
    return [
      ['created', created],
      ['cancelled', paid],
    ];
  const shipped = paid + 1 + ((h >>> 8) % 4);
  const delivered = shipped + 2 + ((h >>> 12) % 6); // at most created + 14 (MAX_LIFETIME)
  return [
    ['created', created],
    ['paid', paid],
    ['shipped', shipped],
    ['delivered', delivered],
  ];
}

function orderValues(shape: Shape, id: number, status: Stage, n: number): unknown[] {
  const h = hash(shape.seed, 4, id);
  const createdBatch = Math.ceil(id / shape.orders);
  const customers = createdBatch * shape.customers;
  const random = mulberry32(h);
  const items = Array.from({ length: 1 + (h % 4) }, () => ({
    sku: `SKU-${String(1 + Math.floor(random() * 5000)).padStart(4, '0')}`,
    qty: 1 + Math.floor(random() * 3),
    cents: 500 + Math.floor(random() * 19_500),
  }));
  const cents = items.reduce((sum, item) => sum + item.qty * item.cents, 0);
  const created = iso(timeOf(shape, createdBatch) + ((id - 1) % shape.orders) * 10);
  return [
    id,
    1 + ((h >>> 3) % customers),
    status,
    (cents / 100).toFixed(2),
    CURRENCIES[(h >>> 11) % CURRENCIES.length],
    items.map((item) => ({ sku: item.sku, qty: item.qty, price: (item.cents / 100).toFixed(2) })),
    created,
    status === 'created' ? created : iso(timeOf(shape, n)),
  ];
}

function eventValues(shape: Shape, orderId: number, stage: Stage, n: number): unknown[] {
  const h = hash(shape.seed, 5, orderId);
  const detail =
    stage === 'paid'
      ? { method: h % 3 === 0 ? 'paypal' : 'card' }
      : stage === 'shipped'
        ? { carrier: CARRIERS[h % CARRIERS.length], tracking: `TRK${(h >>> 4).toString(36).toUpperCase()}` }
        : stage === 'cancelled'
          ? { reason: h % 2 === 0 ? 'customer request' : 'payment failed' }
          : null;
  const at = timeOf(shape, n) + (stage === 'created' ? ((orderId - 1) % shape.orders) * 10 : 0);
  return [orderId * 8 + STAGES.indexOf(stage), orderId, stage, detail, iso(at)];
}

function timeOf(shape: Shape, n: number): number {
  return shape.start + (n - 1) * BATCH_SECONDS * 1000;
}

function iso(ms: number): string {
  return new Date(ms).toISOString();
}
