/**
 * Each component's options have one owner, a zod schema (src/ingest/options-schema.ts,
 * src/queue/worker-options.ts, producer-options.ts, queue-config.ts, src/ops/gateway.ts): the
 * JSDoc `@default` an editor shows says the schema's default, the option types and the schemas
 * name the same options, and a bad option is refused at construction with INVALID_OPTIONS naming
 * it (ingest()'s own refusals: ingest-options.test.ts).
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { isDeepStrictEqual } from 'node:util';
import ts from 'typescript';
import type { z } from 'zod';
import {
  type AdminOptions,
  BadRows,
  Delete,
  HighWatermark,
  type HistoryOptions,
  Producer,
  type ProducerOptions,
  type RewindOptions,
  SchemaChanges,
  StreamAdmin,
  Upsert,
  Visibility,
  Worker,
} from '../../src/index.ts';
import { blockingDelaysSchema, ingestOptionsSchema } from '../../src/ingest/options-schema.ts';
import { defaultOf } from '../../src/ingest/parse-options.ts';
import { type GatewayOptions, gatewayLimitsSchema } from '../../src/ops/gateway.ts';
import { historyOptionsSchema } from '../../src/queue/admin.ts';
import { type BatchOptions, batchJobSchema, batchOptionsSchema } from '../../src/queue/batch-contract.ts';
import { producerOptionsSchema } from '../../src/queue/producer-options.ts';
import { connectionOptionsSchema, type QueueNames, queueNamesSchema } from '../../src/queue/queue-config.ts';
import { rewindOptionsSchema } from '../../src/queue/rewind.ts';
import { type WorkerOptions, workerOptionsSchema } from '../../src/queue/worker-options.ts';
import { REPO_ROOT } from '../helpers/doc-blocks.ts';

type Shape = Readonly<Record<string, z.ZodType>>;

/** Each option type, the file that declares it, and the schema that owns its options. */
const OWNERS: readonly (readonly [type: string, file: string, shape: Shape])[] = [
  ['IngestOptions', 'src/ingest/options.ts', ingestOptionsSchema.shape],
  ['BlockingBackendsOptions', 'src/ingest/options.ts', blockingDelaysSchema.shape],
  ['WorkerOptions', 'src/queue/worker-options.ts', workerOptionsSchema.shape],
  ['ProducerOptions', 'src/queue/producer-options.ts', producerOptionsSchema.shape],
  ['AdminOptions', 'src/queue/admin.ts', connectionOptionsSchema.shape],
  ['QueueNames', 'src/queue/queue-config.ts', queueNamesSchema.shape],
  ['GatewayOptions', 'src/ops/gateway.ts', gatewayLimitsSchema.shape],
  ['HistoryOptions', 'src/queue/admin.ts', historyOptionsSchema.shape],
  ['RewindOptions', 'src/queue/rewind.ts', rewindOptionsSchema.shape],
];

/** Defaults the JSDoc states in words because the schema makes them (a logger, a no-op function). */
const STATED_IN_WORDS = new Set([
  'WorkerOptions.logger',
  'IngestOptions.onBeforeVisible',
  'IngestOptions.logger',
]);

/** The constants a `@default` may name (`Upsert.IF_PRIMARY_KEY`). */
const CONSTANTS: Readonly<Record<string, Readonly<Record<string, string>>>> = {
  BadRows,
  Delete,
  HighWatermark,
  SchemaChanges,
  Upsert,
  Visibility,
};

/**
 * The value a `@default` text starts with (`30000 (30 s)`, `'wait'`, `{}`, `Upsert.OFF`), or
 * undefined for prose.
 */
function literalOf(text: string): { value: unknown } | undefined {
  const match =
    /^('(?:[^'\\]|\\.)*'|-?\d+|\{\}|undefined|true|false|null|([A-Z]\w*)\.([A-Z_]+))(?=\s|$)/.exec(
      text.trim(),
    );
  if (!match) return undefined;
  const literal = match[1] as string;
  if (match[2] !== undefined) return { value: CONSTANTS[match[2]]?.[match[3] as string] };
  if (literal.startsWith("'")) return { value: literal.slice(1, -1) };
  if (literal === '{}') return { value: {} };
  if (literal === 'undefined') return { value: undefined };
  return { value: JSON.parse(literal) };
}

interface Documented {
  readonly optional: boolean;
  /** The `@default` text; undefined without one. */
  readonly stated: string | undefined;
}

/**
 * Every property of each option type with its `@default` text, read from the source (parsed, not
 * type-checked: fast); an `extends` of another type in OWNERS brings that type's properties.
 */
function documentedOptions(): Map<string, Map<string, Documented>> {
  const own = new Map<string, { properties: Map<string, Documented>; bases: string[] }>();
  for (const [type, file] of OWNERS) {
    const path = join(REPO_ROOT, file);
    const source = ts.createSourceFile(path, readFileSync(path, 'utf8'), ts.ScriptTarget.ES2022, true);
    const declaration = source.statements.find(
      (s): s is ts.InterfaceDeclaration => ts.isInterfaceDeclaration(s) && s.name.text === type,
    );
    assert.ok(declaration, `${file} declares no interface ${type}`);
    const properties = new Map<string, Documented>();
    for (const member of declaration.members) {
      if (!ts.isPropertySignature(member)) continue;
      const tag = ts.getJSDocTags(member).find((t) => t.tagName.text === 'default');
      properties.set(member.name.getText(source), {
        optional: member.questionToken !== undefined,
        stated: tag ? ts.getTextOfJSDocComment(tag.comment) : undefined,
      });
    }
    const bases = (declaration.heritageClauses ?? []).flatMap((c) =>
      c.types.map((t) => t.expression.getText(source)),
    );
    own.set(type, { properties, bases });
  }
  const all = (type: string): [string, Documented][] => {
    const entry = own.get(type);
    return entry ? [...entry.bases.flatMap(all), ...entry.properties] : [];
  };
  return new Map(OWNERS.map(([type]) => [type, new Map(all(type))]));
}

describe('option schemas', () => {
  const documented = documentedOptions();

  it('each @default in JSDoc is the default the schema applies', () => {
    const problems: string[] = [];
    for (const [type, , shape] of OWNERS) {
      for (const [name, { stated }] of documented.get(type) ?? []) {
        const field = shape[name];
        if (field === undefined || stated === undefined) continue;
        const literal = literalOf(stated);
        if (literal === undefined) {
          if (!STATED_IN_WORDS.has(`${type}.${name}`))
            problems.push(`${type}.${name}: @default "${stated}" is not a value a test can compare`);
          continue;
        }
        // The stated value, taken as the option, means what the default does (`{}`: every delay at its default).
        const applied = defaultOf(field);
        const meant = literal.value === undefined ? undefined : field.safeParse(literal.value).data;
        if (!isDeepStrictEqual(meant, applied))
          problems.push(
            `${type}.${name}: JSDoc says ${stated}, the schema applies ${JSON.stringify(applied)}`,
          );
      }
    }
    assert.deepEqual(problems, []);
  });

  it('the schema checks every optional option of the type, and no option the type lacks', () => {
    const problems: string[] = [];
    for (const [type, , shape] of OWNERS) {
      const properties = documented.get(type) ?? new Map();
      for (const [name, { optional }] of properties)
        if (optional && !(name in shape)) problems.push(`${type}.${name} is not in its schema`);
      for (const name of Object.keys(shape))
        if (!properties.has(name)) problems.push(`the schema of ${type} has ${name}, the type has not`);
    }
    assert.deepEqual(problems, []);
  });

  it("a batch's options are ingest()'s: the same values allowed, the same defaults", () => {
    const batchDefaults = batchOptionsSchema.parse({});
    assert.deepEqual(Object.keys(batchDefaults).sort(), Object.keys(batchOptionsSchema.shape).sort());
    for (const [name, field] of Object.entries(batchOptionsSchema.shape)) {
      const own = ingestOptionsSchema.shape[name as keyof typeof ingestOptionsSchema.shape];
      assert.deepEqual(defaultOf(field), defaultOf(own), `default of ${name}`);
      assert.equal(field, own, `${name} is checked by ingest()'s own schema`);
    }
    // A job without options gets every default, the same object `options: {}` gets.
    assert.deepEqual(batchJobSchema.shape.options.parse(undefined), batchDefaults);
    assert.deepEqual(batchJobSchema.shape.options.parse({}), batchDefaults);
  });

  it('a bad option is refused at construction: INVALID_OPTIONS, naming it and the value', () => {
    const refused = (pattern: RegExp) => (error: Error & { code?: string }) =>
      error.code === 'INVALID_OPTIONS' && pattern.test(error.message);
    assert.throws(
      () => new Worker({ concurrency: 0 }),
      refused(/^Expected `concurrency` to be an integer from 1 to 256, got `0`$/),
    );
    assert.throws(
      () => new Worker({ sweepIntervalMs: 2.5 }),
      refused(/^Expected `sweepIntervalMs` to be an integer from 10 to 3600000, got `2.5`$/),
    );
    assert.throws(
      () => new Producer({ onBackpressure: 'drop' as 'fail' }),
      refused(/^Expected `onBackpressure` to be one of 'wait', 'fail', got `drop`$/),
    );
    assert.throws(
      () => new Producer({ maxPendingBatches: -1 }),
      refused(/^Expected `maxPendingBatches` to be an integer >= 0, got `-1`$/),
    );
    assert.throws(
      () => new Producer({ prefix: 'a{b}' }),
      refused(/^`prefix`: no "\{" or "\}" \(they are Redis Cluster hash tags\), got `a\{b\}`$/),
    );
    assert.throws(
      () => new Worker({ blockingBackends: { cancelAfterMs: -1 } }),
      refused(/^Expected `blockingBackends.cancelAfterMs` to be a finite number >= 0, got `-1`$/),
    );
    assert.throws(
      () => new StreamAdmin({ redis: 42 as unknown as string }),
      refused(/^Expected `redis` to be a Redis URL or ioredis options, got `42`$/),
    );
  });

  it('a bad option of a StreamAdmin call is refused before it touches PostgreSQL or Redis', async () => {
    const refused = (pattern: RegExp) => (error: Error & { code?: string }) =>
      error.code === 'INVALID_OPTIONS' && pattern.test(error.message);
    // Nothing listens on port 1: a call that reached a service would fail otherwise.
    const admin = new StreamAdmin({
      databaseUrl: 'postgres://127.0.0.1:1/none',
      redis: { port: 1, lazyConnect: true },
    });
    try {
      await assert.rejects(
        admin.history('s', { limit: 0 }),
        refused(/^Expected `limit` to be an integer >= 1, got `0`$/),
      );
      await assert.rejects(
        admin.rewind('s', { toSeq: 1.5 }),
        refused(/^Expected `toSeq` to be an integer >= 1, got `1.5`$/),
      );
    } finally {
      await admin.close();
    }
  });
});

// The option types and the schemas' inputs are the same options, each way (checked by tsc).
type Same<A, B> = [A] extends [B] ? ([B] extends [A] ? true : false) : false;
const sameOptions: [
  // blockingBackends: ingest()'s schema takes any input and names the delay that is wrong.
  Same<
    Omit<WorkerOptions, 'blockingBackends'>,
    Omit<z.input<typeof workerOptionsSchema>, 'blockingBackends'>
  >,
  Same<ProducerOptions, z.input<typeof producerOptionsSchema>>,
  Same<AdminOptions, z.input<typeof connectionOptionsSchema>>,
  Same<QueueNames, z.input<typeof queueNamesSchema>>,
  Same<Pick<GatewayOptions, keyof z.input<typeof gatewayLimitsSchema>>, z.input<typeof gatewayLimitsSchema>>,
  Same<HistoryOptions, z.input<typeof historyOptionsSchema>>,
  Same<RewindOptions, z.input<typeof rewindOptionsSchema>>,
  // A batch's options are ingest()'s, as the batch contract returns them.
  Same<BatchOptions, Readonly<z.output<typeof batchOptionsSchema>>>,
] = [true, true, true, true, true, true, true, true];
void sameOptions;
