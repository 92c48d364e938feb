/** Settings every producing command shares (enqueue, gateway, demo): where to, and backpressure. */
import type { z } from 'zod';
import { type ProducerOptions, producerOptionsSchema } from '../../queue/producer-options.ts';
import { connectionConfigSchema, numberSettings } from '../config.ts';
import { CONNECTION_SETTINGS, withDefaults } from './common.ts';

/** A producer needs Redis and the queue names, not PostgreSQL. */
export const PRODUCER_CONNECTION_SETTINGS = {
  redisUrl: CONNECTION_SETTINGS.redisUrl,
  queueName: CONNECTION_SETTINGS.queueName,
  prefix: CONNECTION_SETTINGS.prefix,
} as const;

export const backpressureConfigShape = numberSettings(producerOptionsSchema.shape, [
  'maxPendingBatches',
  'maxPendingBytes',
  'maxBatchBytes',
  'batchIdTtlSeconds',
]);

export const BACKPRESSURE_SETTINGS = withDefaults(backpressureConfigShape, {
  maxPendingBatches: [
    '--max-pending-batches <n>',
    'MAX_PENDING_BATCHES',
    'batches waiting per stream before producers wait or are refused, 0 for no bound',
  ],
  maxPendingBytes: [
    '--max-pending-bytes <n>',
    'MAX_PENDING_BYTES',
    'bytes waiting per stream before producers wait or are refused, 0 for no bound',
  ],
  maxBatchBytes: ['--max-batch-bytes <n>', 'MAX_BATCH_BYTES', 'largest batch accepted, as wire JSON'],
  batchIdTtlSeconds: [
    '--batch-id-ttl-seconds <s>',
    'BATCH_ID_TTL_SECONDS',
    'the idempotency window: how long a batchId is remembered, so a retry within it is not enqueued twice',
  ],
} as const);

export const producerConfigSchema = connectionConfigSchema
  .pick({ redisUrl: true, queueName: true, prefix: true })
  .extend(backpressureConfigShape);

type ProducerConfig = z.output<typeof producerConfigSchema>;

/** ProducerOptions from validated settings; `waitMs` 0 refuses at once under backpressure. */
export function producerOptionsOf(config: ProducerConfig, waitMs: number): ProducerOptions {
  return {
    redis: config.redisUrl,
    queueName: config.queueName,
    prefix: config.prefix,
    maxPendingBatches: config.maxPendingBatches,
    maxPendingBytes: config.maxPendingBytes,
    maxBatchBytes: config.maxBatchBytes,
    batchIdTtlSeconds: config.batchIdTtlSeconds,
    onBackpressure: waitMs > 0 ? 'wait' : 'fail',
    backpressureTimeoutMs: waitMs,
  };
}
