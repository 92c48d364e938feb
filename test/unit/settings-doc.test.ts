/**
 * docs/operations.md lists every setting of every command as the code defines it: the section is
 * generated (`npm run docs:settings`), each default the help states is the one zod applies, and
 * a setting that is a library option has that option's default (its schema owns it).
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { isDeepStrictEqual } from 'node:util';
import { Option } from 'commander';
import type { z } from 'zod';
import {
  commandsInOrder,
  committedSection,
  settingOf,
  settingsSection,
  splitDefault,
} from '../../scripts/settings-doc.ts';
import { defaultOf } from '../../src/ingest/parse-options.ts';
import { CONNECTION_SETTINGS, type SettingTable } from '../../src/ops/cli/common.ts';
import { DEMO_SETTINGS, demoConfigSchema } from '../../src/ops/cli/demo-command.ts';
import { ENQUEUE_SETTINGS, enqueueConfigSchema } from '../../src/ops/cli/enqueue-command.ts';
import { GATEWAY_SETTINGS, gatewayConfigSchema } from '../../src/ops/cli/gateway-command.ts';
import { producerConfigSchema } from '../../src/ops/cli/producer-settings.ts';
import { WORKER_SETTINGS } from '../../src/ops/cli/worker-command.ts';
import { connectionConfigSchema, workerConfigSchema } from '../../src/ops/config.ts';
import { gatewayLimitsSchema } from '../../src/ops/gateway.ts';
import { producerOptionsSchema } from '../../src/queue/producer-options.ts';
import { connectionOptionsSchema } from '../../src/queue/queue-config.ts';
import { workerOptionsSchema } from '../../src/queue/worker-options.ts';

/** Each command's settings table and the zod schema that validates (and defaults) them. */
const CONFIG: Record<string, readonly [SettingTable, { shape: Record<string, z.ZodType> }]> = {
  worker: [WORKER_SETTINGS, workerConfigSchema],
  gateway: [GATEWAY_SETTINGS, gatewayConfigSchema],
  enqueue: [ENQUEUE_SETTINGS, enqueueConfigSchema],
  status: [CONNECTION_SETTINGS, connectionConfigSchema],
  history: [CONNECTION_SETTINGS, connectionConfigSchema],
  skip: [CONNECTION_SETTINGS, connectionConfigSchema],
  retry: [CONNECTION_SETTINGS, connectionConfigSchema],
  rewind: [CONNECTION_SETTINGS, connectionConfigSchema],
  forget: [CONNECTION_SETTINGS, connectionConfigSchema],
  rejected: [CONNECTION_SETTINGS, connectionConfigSchema],
  replay: [CONNECTION_SETTINGS, connectionConfigSchema],
  demo: [DEMO_SETTINGS, demoConfigSchema],
};

describe('docs/operations.md settings', () => {
  it('match what `npm run docs:settings` generates from the commands (run it after changing a flag)', () => {
    assert.equal(committedSection(), settingsSection());
  });

  it('state each default as zod applies it, for every setting zod validates', () => {
    const problems: string[] = [];
    for (const command of commandsInOrder()) {
      const [settings, schema] = CONFIG[command.name()] ?? assert.fail(`no CONFIG for ${command.name()}`);
      const keyOf = new Map(
        Object.entries(settings).map(([key, [flags]]) => [new Option(flags).attributeName(), key]),
      );
      for (const option of command.options) {
        const key = keyOf.get(option.attributeName()) ?? option.attributeName();
        const field = schema.shape[key];
        if (!field) continue;
        const parsed = field.safeParse(undefined);
        const zodDefault = parsed.success ? parsed.data : undefined;
        const stated = settingOf(option).default;
        if (zodDefault === undefined || zodDefault === false) continue;
        // A stated default may go on to explain itself: "5000; 0: wait for Redis".
        if (stated === undefined || !new RegExp(`^${escapeRegExp(String(zodDefault))}($|;| )`).test(stated))
          problems.push(
            `${command.name()} ${option.flags}: help says ${stated}, zod's default is ${zodDefault}`,
          );
      }
    }
    assert.deepEqual(problems, []);
  });

  it('give each setting that is a library option the default of its schema', () => {
    type Shape = Readonly<Record<string, z.ZodType>>;
    /** A command's configuration, the options it fills, and setting names that differ from the option's. */
    const FILLS: readonly (readonly [string, Shape, Shape, Readonly<Record<string, string>>])[] = [
      ['connection', connectionConfigSchema.shape, connectionOptionsSchema.shape, { redisUrl: 'redis' }],
      ['worker', workerConfigSchema.shape, workerOptionsSchema.shape, {}],
      ['producer', producerConfigSchema.shape, producerOptionsSchema.shape, {}],
      ['enqueue', enqueueConfigSchema.shape, producerOptionsSchema.shape, {}],
      ['gateway', gatewayConfigSchema.shape, producerOptionsSchema.shape, {}],
      ['gateway', gatewayConfigSchema.shape, gatewayLimitsSchema.shape, { retryAfter: 'retryAfterSeconds' }],
    ];
    /** Defaults a command chooses on purpose, unlike the library's. */
    const OWN = new Set(['gateway.redisTimeoutMs']);
    const problems: string[] = [];
    for (const [command, config, options, renamed] of FILLS) {
      for (const [setting, field] of Object.entries(config)) {
        const option = options[renamed[setting] ?? setting];
        if (option === undefined || OWN.has(`${command}.${setting}`)) continue;
        if (!isDeepStrictEqual(defaultOf(field), defaultOf(option)))
          problems.push(
            `${command} ${setting}: ${defaultOf(field)}, the option's default is ${defaultOf(option)}`,
          );
      }
    }
    assert.deepEqual(problems, []);
  });

  it('split a help text into its meaning and its default, parentheses inside the default included', () => {
    assert.deepEqual(splitDefault('rows per batch (default 10000)'), {
      meaning: 'rows per batch',
      default: '10000',
    });
    assert.deepEqual(splitDefault('the stream (default "(a)")'), { meaning: 'the stream', default: '"(a)"' });
    assert.deepEqual(splitDefault('csv (default: from the extension)'), {
      meaning: 'csv',
      default: 'from the extension',
    });
    assert.deepEqual(splitDefault('token (prefer the environment)'), {
      meaning: 'token (prefer the environment)',
      default: undefined,
    });
  });
});

function escapeRegExp(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}
