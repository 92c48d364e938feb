/**
 * The consuming side of the queue. BullMQ delivers kicks (at least once, in no guaranteed
 * order); for each, the worker drains the kicked stream through StreamApplier, which enforces
 * order and exactly-once in PostgreSQL. This file adds what a long-running process needs:
 * poison handling, a sweep that keeps every stream moving, and graceful shutdown.
 */
import { EventEmitter } from 'node:events';
import { setTimeout as sleep } from 'node:timers/promises';
import { Worker as BullWorker, type Job, type JobJson, Queue, UnrecoverableError } from 'bullmq';
import type { Redis, RedisOptions } from 'ioredis';
import pg from 'pg';
import { type Logger, pino } from 'pino';
import type { BlockingBackendsOptions } from '../ingest/options.ts';
import {
  type ApplyHooks,
  BatchApplyFailure,
  type CommittedBatch,
  type DrainResult,
  StreamApplier,
} from './apply-stream.ts';
import { InvalidBatchError } from './batch-contract.ts';
import { describeError, isMalformed, isPoison } from './failures.ts';
import { Producer } from './producer.ts';
import {
  BATCH_JOB,
  DEFAULT_DATABASE_URL,
  DEFAULT_PREFIX,
  DEFAULT_QUEUE_NAME,
  DEFAULT_REDIS_URL,
  KICK_JOB,
  KICK_JOB_OPTIONS,
  type KickData,
  kickJobId,
  type QueueNames,
} from './queue-config.ts';
import { ensureStateTables } from './stream-state.ts';
import { connectRedis, type StreamInfo, StreamStore } from './stream-store.ts';

export interface WorkerOptions extends QueueNames {
  /** @default process.env.DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres' */
  readonly databaseUrl?: string;
  /** @default process.env.REDIS_URL ?? 'redis://127.0.0.1:6379' */
  readonly redis?: string | RedisOptions;
  /** Kicks (streams) worked on at once by this process. @default 2 */
  readonly concurrency?: number;
  /** Times a poison batch (bad data, constraint violation) is retried before it is parked. @default 3 */
  readonly poisonRetries?: number;
  /** First backoff between poison retries, doubled each time. @default 1000 */
  readonly poisonBackoffMs?: number;
  /** BullMQ lock duration of an active job; a dead worker's job is redelivered after it. @default 30000 */
  readonly lockDurationMs?: number;
  /** How often BullMQ looks for stalled jobs. @default 30000 */
  readonly stalledIntervalMs?: number;
  /** How often every stream with pending batches is kicked again, whatever happened to its kicks. @default 5000 */
  readonly sweepIntervalMs?: number;
  /** On close (SIGTERM): how long the current batches may take before they are abandoned (rolled back). @default 30000 */
  readonly shutdownTimeoutMs?: number;
  /** Passed to the core for table swaps. @default {} (cancel blockers after 5 minutes) */
  readonly blockingBackends?: BlockingBackendsOptions | false;
  /** @default a pino logger at process.env.LOG_LEVEL ?? 'info' */
  readonly logger?: Logger;
  /** Test-only fault injection. @default undefined (none) */
  readonly fault?: ApplyHooks['fault'];
}

export interface WorkerEvents {
  committed: [batch: CommittedBatch];
  /** A batch failed and will be tried again (`poison`: it failed on its data). */
  retried: [event: { stream: string; seq: number; reason: string; poison: boolean }];
  /** A batch (or a malformed job) was parked: its stream waits for `skip` or `retry`. */
  parked: [event: { stream: string | null; seq: number | null; reason: string }];
  /** A batch another worker committed first (found under the stream lock; rolled back, acknowledged). */
  duplicate: [event: { stream: string; seq: number }];
  /** A kick finished: how many batches it applied, or why it stopped. */
  drained: [event: { stream: string; result: DrainResult }];
}

/**
 * Applies enqueued batches to PostgreSQL, in order per stream and exactly once, as
 * `pg-bulk-ingest worker` does: `start()` to take jobs, `close()` to stop gracefully. Emits
 * WorkerEvents (`committed`, `retried`, `parked`, `duplicate`, `drained`).
 */
export class Worker extends EventEmitter<WorkerEvents> {
  readonly #options: Required<Omit<WorkerOptions, 'fault' | 'logger' | 'redis'>> & {
    redis: string | RedisOptions;
  };
  readonly #log: Logger;
  readonly #pool: pg.Pool;
  readonly #redis: Redis;
  readonly #store: StreamStore;
  readonly #queue: Queue<KickData>;
  readonly #admission: Producer;
  readonly #applier: StreamApplier;
  readonly #stopping = new AbortController();
  #bull: BullWorker | undefined;
  /** BullMQ does not close a connection it was given: we do. */
  #bullConnection: Redis | undefined;
  #sweepTimer: NodeJS.Timeout | undefined;

  constructor(options: WorkerOptions = {}) {
    super();
    this.#options = {
      databaseUrl: options.databaseUrl ?? process.env.DATABASE_URL ?? DEFAULT_DATABASE_URL,
      redis: options.redis ?? process.env.REDIS_URL ?? DEFAULT_REDIS_URL,
      queueName: options.queueName ?? DEFAULT_QUEUE_NAME,
      prefix: options.prefix ?? DEFAULT_PREFIX,
      concurrency: options.concurrency ?? 2,
      poisonRetries: options.poisonRetries ?? 3,
      poisonBackoffMs: options.poisonBackoffMs ?? 1000,
      lockDurationMs: options.lockDurationMs ?? 30_000,
      stalledIntervalMs: options.stalledIntervalMs ?? 30_000,
      sweepIntervalMs: options.sweepIntervalMs ?? 5000,
      shutdownTimeoutMs: options.shutdownTimeoutMs ?? 30_000,
      blockingBackends: options.blockingBackends ?? {},
    };
    this.#log = options.logger ?? pino({ level: process.env.LOG_LEVEL ?? 'info' });
    this.#pool = new pg.Pool({
      connectionString: this.#options.databaseUrl,
      max: this.#options.concurrency + 2,
    });
    // A broken idle connection (PostgreSQL restarted) must not crash the process: the next batch reconnects.
    this.#pool.on('error', (error) => this.#log.warn({ err: error }, 'idle PostgreSQL connection failed'));
    this.#redis = connectRedis(this.#options.redis);
    this.#store = new StreamStore(this.#redis, this.#options.prefix);
    this.#queue = new Queue<KickData>(this.#options.queueName, { connection: this.#redis });
    this.#admission = new Producer({
      redis: this.#options.redis,
      queueName: this.#options.queueName,
      prefix: this.#options.prefix,
      maxPendingBatches: 0,
      maxPendingBytes: 0,
    });
    this.#applier = new StreamApplier(this.#pool, this.#store, this.#options.blockingBackends, {
      onCommitted: (batch) => {
        this.#log.debug({ stream: batch.stream, seq: batch.seq }, 'batch committed');
        this.emit('committed', batch);
      },
      onDuplicate: (stream, seq) => this.emit('duplicate', { stream, seq }),
      ...(options.fault ? { fault: options.fault } : {}),
    });
  }

  /** Creates the state tables if needed and starts taking jobs. */
  async start(): Promise<void> {
    await ensureStateTables(this.#pool);
    this.#bullConnection = connectRedis(this.#options.redis);
    this.#bull = new RawTolerantBullWorker(
      this.#options.queueName,
      (job, token) => this.#process(job, token),
      {
        connection: this.#bullConnection,
        concurrency: this.#options.concurrency,
        lockDuration: this.#options.lockDurationMs,
        stalledInterval: this.#options.stalledIntervalMs,
        // Kicks are idempotent: redelivering one after a crash is always safe.
        maxStalledCount: 1000,
        autorun: true,
      },
    );
    this.#bull.on('error', (error) => this.#log.error({ err: error }, 'queue error'));
    this.#sweepTimer = setInterval(
      () => void this.sweep().catch((e) => this.#log.warn({ err: e }, 'sweep failed')),
      this.#options.sweepIntervalMs,
    );
    this.#sweepTimer.unref();
    this.#log.info(
      { queue: this.#options.queueName, concurrency: this.#options.concurrency },
      'worker started',
    );
  }

  /** For `/readyz`: each resolves when its service answers. */
  readonly readinessChecks = {
    postgres: () => this.#pool.query('SELECT 1'),
    redis: () => this.#redis.ping(),
  };

  /** BullMQ job counts by state (kicks and foreign batch jobs), for the queue depth gauge. */
  async jobCounts(): Promise<Record<string, number>> {
    return this.#queue.getJobCounts('wait', 'active', 'delayed', 'failed', 'completed', 'prioritized');
  }

  /** Every stream as Redis knows it (committed seq is PostgreSQL's, mirrored after each commit). */
  async streams(): Promise<StreamInfo[]> {
    return Promise.all((await this.#store.streams()).map((stream) => this.#store.info(stream)));
  }

  /** Kicks every stream that has pending batches and is not blocked. */
  async sweep(): Promise<void> {
    const bucket = Math.floor(Date.now() / this.#options.sweepIntervalMs);
    for (const stream of await this.#store.streams()) {
      const info = await this.#store.info(stream);
      if (info.blocked || info.enqueuedSeq <= info.committedSeq) continue;
      await this.#queue.add(
        KICK_JOB,
        { stream },
        { ...KICK_JOB_OPTIONS, jobId: kickJobId(stream, `sweep-${bucket}`) },
      );
    }
  }

  /**
   * Stops taking jobs, lets current batches finish for up to shutdownTimeoutMs, then abandons
   * what is left (its transactions roll back; its kicks are redelivered), and closes connections.
   */
  async close(): Promise<void> {
    clearInterval(this.#sweepTimer);
    this.#stopping.abort();
    const bull = this.#bull;
    if (bull) {
      const timeout = new AbortController();
      const finished = await Promise.race([
        bull.close().then(() => true),
        sleep(this.#options.shutdownTimeoutMs, false, { signal: timeout.signal }).catch(() => false),
      ]);
      timeout.abort(); // a clean close must not keep the process alive until the timeout
      if (!finished) {
        this.#log.warn(
          'shutdown timeout: abandoning the current batches (they roll back and are redelivered)',
        );
        await this.#applier.abandon();
        await bull.close(true);
      }
    }
    await this.#admission.close();
    await this.#queue.close();
    this.#bullConnection?.disconnect();
    this.#redis.disconnect();
    await this.#pool.end();
    this.#log.info('worker stopped');
  }

  async #process(job: Job, _token?: string): Promise<DrainResult> {
    const stream = job.name === BATCH_JOB ? await this.#admit(job) : (job.data as KickData).stream;
    const result = await this.#drainWithPoisonRetries(stream);
    this.emit('drained', { stream, result });
    if (result.kind === 'stopped') {
      // Shutting down with batches left: make sure another worker picks the stream up now.
      await this.#queue.add(
        KICK_JOB,
        { stream },
        { ...KICK_JOB_OPTIONS, jobId: kickJobId(stream, `handover-${Date.now()}`) },
      );
    }
    return result;
  }

  /** A whole batch added by a foreign producer: validated, then enqueued like any other. */
  async #admit(job: Job): Promise<string> {
    try {
      const data = typeof job.data === 'string' ? parseJobText(job.data) : job.data;
      const batchId = typeof data?.batchId === 'string' ? data.batchId : `bullmq-job-${job.id}`;
      const { stream } = await this.#admission.enqueueJob({ ...data, batchId }, `Job ${job.id}`);
      return stream;
    } catch (error) {
      if (!isMalformed(error) && !(error instanceof SyntaxError)) throw error;
      const reason = describeError(error);
      this.#log.error({ jobId: job.id, reason }, 'malformed batch job parked');
      this.emit('parked', { stream: null, seq: null, reason });
      throw new UnrecoverableError(reason);
    }
  }

  async #drainWithPoisonRetries(stream: string): Promise<DrainResult> {
    for (let attempt = 1; ; attempt++) {
      try {
        return await this.#applier.drain(stream, this.#stopping.signal);
      } catch (error) {
        if (!(error instanceof BatchApplyFailure)) throw error;
        const reason = describeError(error.cause);
        const poison = isPoison(error.cause);
        if (!poison || (!isMalformed(error.cause) && attempt <= this.#options.poisonRetries)) {
          this.#log.warn({ stream, seq: error.seq, reason, attempt }, 'batch failed; retrying');
          this.emit('retried', { stream, seq: error.seq, reason, poison });
          if (!poison) throw error; // transient: BullMQ retries the kick with backoff
          await sleep(this.#options.poisonBackoffMs * 2 ** (attempt - 1), undefined, {
            signal: this.#stopping.signal,
          }).catch(() => undefined);
          if (this.#stopping.signal.aborted) throw error;
          continue;
        }
        if (!(await this.#store.setBlocked(stream, error.seq, reason))) {
          throw new UnrecoverableError(
            `Stream ${stream} is blocked at batch ${error.seq} (parked by another worker)`,
          );
        }
        this.#log.error(
          { stream, seq: error.seq, reason },
          'batch parked: the stream is blocked until skip or retry',
        );
        this.emit('parked', { stream, seq: error.seq, reason });
        throw new UnrecoverableError(`Stream ${stream} is blocked at batch ${error.seq}: ${reason}`);
      }
    }
  }
}

/**
 * BullMQ parses a job's data before our processor sees it; data that is not JSON at all (a
 * foreign producer's bug) would make that throw on every delivery, leaving the job active and
 * redelivered forever. Keep such data as its raw text instead: admission then fails the job
 * with a clear reason, like any other malformed batch.
 */
class RawTolerantBullWorker extends BullWorker {
  protected override createJob(data: JobJson, jobId: string): Job {
    try {
      return super.createJob(data, jobId);
    } catch (error) {
      if (!(error instanceof SyntaxError)) throw error;
      return super.createJob({ ...data, data: JSON.stringify(data.data) }, jobId);
    }
  }
}

function parseJobText(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch (error) {
    throw new InvalidBatchError(
      `Job data is not valid JSON (${(error as Error).message}): ${JSON.stringify(text.slice(0, 80))}`,
      {},
    );
  }
}
