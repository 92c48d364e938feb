/**
 * The consuming side of the queue. BullMQ delivers kicks (at least once, in no guaranteed
 * order); for each, the worker drains the kicked stream through StreamApplier, which enforces
 * order and exactly-once in PostgreSQL. This file adds what a long-running process needs:
 * poison handling, a sweep that keeps every stream moving, and graceful shutdown.
 */
import { EventEmitter } from 'node:events';
import { setTimeout as sleep } from 'node:timers/promises';
import {
  Worker as BullWorker,
  type WorkerOptions as BullWorkerOptions,
  type Job,
  type JobJson,
  Queue,
  UnrecoverableError,
} from 'bullmq';
import type { Redis } from 'ioredis';
import pg from 'pg';
import type { Logger } from 'pino';
import { parseOptions } from '../ingest/parse-options.ts';
import { BatchApplyFailure, type CommittedBatch, type DrainResult, StreamApplier } from './apply-stream.ts';
import { InvalidBatchError } from './batch-contract.ts';
import { describeError, isMalformed, isPoison } from './failures.ts';
import { LedgerRetention } from './ledger-retention.ts';
import { Producer } from './producer.ts';
import { BATCH_JOB, bullQueues, type KickData, kickStream } from './queue-config.ts';
import { ensureStateTables } from './stream-state.ts';
import { connectRedis, type StreamInfo, StreamStore } from './stream-store.ts';
import { type ResolvedWorkerOptions, type WorkerOptions, workerOptionsSchema } from './worker-options.ts';

export interface WorkerEvents {
  committed: [batch: CommittedBatch];
  /** A batch failed and will be tried again (`poison`: it failed on its data). */
  retried: [event: { stream: string; seq: number; reason: string; poison: boolean }];
  /** A batch (or a malformed job) was parked: its stream waits for `skip` or `retry`. */
  parked: [event: { stream: string | null; seq: number | null; reason: string }];
  /** A batch another worker committed first (found under the stream lock; rolled back, acknowledged). */
  duplicate: [event: { stream: string; seq: number }];
  /** Redis was found to have lost data of a stream (see docs/queue.md, "Redis losing data"). */
  redisGap: [event: { stream: string; description: string }];
  /** A foreign batch job was admitted: appended to its stream. */
  admitted: [event: { jobId: string; stream: string; seq: number }];
  /** A kick finished: how many batches it applied, or why it stopped. */
  drained: [event: { stream: string; result: DrainResult }];
}

/**
 * Applies enqueued batches to PostgreSQL, in order per stream and exactly once, as
 * `pg-bulk-ingest worker` does: `start()` to take jobs, `close()` to stop gracefully. Emits
 * WorkerEvents (`committed`, `retried`, `parked`, `duplicate`, `drained`).
 */
export class Worker extends EventEmitter<WorkerEvents> {
  readonly #options: ResolvedWorkerOptions;
  readonly #log: Logger;
  readonly #pool: pg.Pool;
  readonly #redis: Redis;
  readonly #store: StreamStore;
  readonly #queue: Queue<KickData>;
  readonly #admissionQueue: Queue;
  /** BullMQ's names for this deployment (kicks, admissions, prefix). */
  readonly #queues: ReturnType<typeof bullQueues>;
  readonly #admission: Producer;
  readonly #applier: StreamApplier;
  readonly #stopping = new AbortController();
  #bull: BullWorker | undefined;
  #bullAdmissions: BullWorker | undefined;
  #sweeping: Promise<void> | undefined;
  /**
   * BullMQ's connection (its queues and workers), apart from the stream store's: BullMQ defines
   * its ~50 Lua scripts on a connection it is given, and ioredis copies every script defined on
   * a connection into each pipeline it makes, which made each of the store's pipelines cost more
   * than the commands in it. BullMQ does not close a connection it was given: we do.
   */
  readonly #bullConnection: Redis;
  #sweepTimer: NodeJS.Timeout | undefined;
  readonly #retention: LedgerRetention;

  constructor(options: WorkerOptions = {}) {
    super();
    this.#options = parseOptions(workerOptionsSchema, options);
    this.#log = this.#options.logger;
    this.#pool = new pg.Pool({
      connectionString: this.#options.databaseUrl,
      max: this.#options.concurrency + 2,
    });
    // A broken idle connection (PostgreSQL restarted) must not crash the process: the next batch reconnects.
    this.#pool.on('error', (error) => this.#log.warn({ err: error }, 'idle PostgreSQL connection failed'));
    this.#redis = connectRedis(this.#options.redis);
    this.#store = new StreamStore(this.#redis, this.#options.prefix);
    this.#retention = new LedgerRetention(this.#pool, this.#options.ledgerRetentionDays, this.#log);
    this.#queues = bullQueues(this.#options);
    const queues = this.#queues;
    this.#bullConnection = connectRedis(this.#options.redis);
    const bull = { connection: this.#bullConnection, prefix: queues.prefix };
    this.#queue = new Queue<KickData>(queues.kicks, bull);
    this.#admissionQueue = new Queue(queues.admissions, bull);
    this.#admission = new Producer({
      redis: this.#options.redis,
      queueName: this.#options.queueName,
      prefix: this.#options.prefix,
      maxPendingBatches: 0,
      maxPendingBytes: 0,
    });
    this.#applier = new StreamApplier(
      this.#pool,
      this.#store,
      this.#options.blockingBackends,
      {
        onCommitted: (batch) => {
          this.#log.debug(
            { stream: batch.stream, seq: batch.seq, batches: batch.headers.length },
            'batches committed',
          );
          // Which path each migration took and why (in place or rebuilt), and its lock waits.
          for (const migration of batch.report.migrations)
            this.#log.info({ stream: batch.stream, seq: batch.seq, migration }, 'table migrated');
          this.emit('committed', batch);
        },
        onDuplicate: (stream, seq) => this.emit('duplicate', { stream, seq }),
        onRedisGap: (stream, description) => {
          this.#log.warn({ stream }, description);
          this.emit('redisGap', { stream, description });
        },
        ...(this.#options.fault ? { fault: this.#options.fault } : {}),
      },
      {
        maxBatches: this.#options.coalesceMaxBatches,
        maxRows: this.#options.coalesceMaxRows,
        maxBytes: this.#options.coalesceMaxBytes,
      },
    );
  }

  /** Creates the state tables if needed and starts taking jobs. */
  async start(): Promise<void> {
    await ensureStateTables(this.#pool);
    const queues = this.#queues;
    const common = {
      connection: this.#bullConnection,
      prefix: queues.prefix,
      lockDuration: this.#options.lockDurationMs,
      stalledInterval: this.#options.stalledIntervalMs,
      // Kicks and admissions are idempotent: redelivering one after a crash is always safe.
      maxStalledCount: 1000,
      autorun: true,
    };
    this.#bull = new BullWorker(queues.kicks, (job) => this.#process(job), {
      ...common,
      concurrency: this.#options.concurrency,
    });
    this.#bull.on('error', (error) => this.#log.error({ err: error }, 'queue error'));
    // Foreign batch jobs are admitted one at a time across all workers, in the order they were
    // added: BullMQ's wait list is FIFO, and only a retry could reorder it, so admission never
    // fails a job for a transient reason (it retries in place, see #admit). Admission starts only
    // once the queue's global concurrency is set; a Redis out of memory refuses that write, and
    // the worker applies batches meanwhile (which is what frees Redis).
    void this.#startAdmissions(queues.admissions, { ...common, concurrency: 1 });
    this.#sweepTimer = setInterval(() => void this.sweep(), this.#options.sweepIntervalMs);
    this.#sweepTimer.unref();
    this.#retention.start();
    this.#log.info(
      { queue: this.#options.queueName, concurrency: this.#options.concurrency },
      'worker started',
    );
  }

  async #startAdmissions(queueName: string, options: BullWorkerOptions) {
    for (let attempt = 1; !this.#stopping.signal.aborted; attempt++) {
      try {
        await this.#admissionQueue.setGlobalConcurrency(1);
        break;
      } catch (error) {
        this.#log.warn({ err: error, attempt }, 'cannot set the admission queue concurrency yet; retrying');
        await this.#pause(Math.min(5000, 200 * attempt));
      }
    }
    if (this.#stopping.signal.aborted) return;
    this.#bullAdmissions = new RawTolerantBullWorker(queueName, (job) => this.#admit(job), options);
    this.#bullAdmissions.on('error', (error) => this.#log.error({ err: error }, 'queue error'));
  }

  /** For `/readyz`: each resolves when its service answers. */
  readonly readinessChecks = {
    postgres: () => this.#pool.query('SELECT 1'),
    redis: () => this.#redis.ping(),
  };

  /** BullMQ job counts by state (kicks and foreign batch jobs), for the queue depth gauge. */
  async jobCounts(): Promise<Record<string, number>> {
    const states = ['wait', 'active', 'delayed', 'failed', 'completed', 'prioritized'] as const;
    const [kicks, admissions] = await Promise.all(
      [this.#queue, this.#admissionQueue].map((q) => q.getJobCounts(...states)),
    );
    return Object.fromEntries(
      states.map((state) => [state, (kicks?.[state] ?? 0) + (admissions?.[state] ?? 0)]),
    );
  }

  /**
   * Every stream as Redis knows it (committed seq is PostgreSQL's, mirrored after each commit).
   * A stream whose state cannot be read is left out and logged: it never hides the others.
   */
  async streams(): Promise<StreamInfo[]> {
    const infos = await this.#store.infos(await this.#store.streams());
    return infos.filter((info): info is StreamInfo => {
      if (!(info instanceof Error)) return true;
      this.#log.error({ err: info }, 'stream state unreadable');
      return false;
    });
  }

  /**
   * Kicks every stream that has pending batches and is not blocked, whatever happened to its
   * kicks. Never runs twice at once: while one runs, a call (the next tick of a slow sweep over
   * many streams) gets the sweep in flight.
   */
  sweep(): Promise<void> {
    this.#sweeping ??= this.#sweepOnce().finally(() => {
      this.#sweeping = undefined;
    });
    return this.#sweeping;
  }

  async #sweepOnce(): Promise<void> {
    try {
      const due = await this.#store.streamsToKick();
      const unkicked: string[] = [];
      for (let i = 0; i < due.length; i += 50) {
        const slice = due.slice(i, i + 50);
        const results = await Promise.allSettled(slice.map((stream) => kickStream(this.#queue, stream)));
        for (const [j, result] of results.entries())
          if (result.status === 'rejected') unkicked.push(slice[j] as string);
      }
      // A kick can fail where applying cannot: Redis out of memory refuses BullMQ's writes (no
      // worker can take a job), while the commit report that frees a batch runs anyway. So the
      // sweep drains such streams itself; order and exactly-once are PostgreSQL's, whoever drains.
      for (const stream of unkicked) {
        if (this.#stopping.signal.aborted) break;
        this.#log.warn({ stream }, 'kick refused by Redis: the sweep drains the stream itself');
        await this.#drainWithPoisonRetries(stream).catch((e) =>
          this.#log.warn({ err: e, stream }, 'drain failed'),
        );
      }
    } catch (error) {
      this.#log.warn({ err: error }, 'sweep failed');
    }
  }

  /**
   * Deletes the ledger rows older than `ledgerRetentionDays`, in small steps; returns how many.
   * Workers do it on their own every 10 minutes; this is for a test or an operator's script.
   */
  pruneLedger(): Promise<number> {
    return this.#retention.prune();
  }

  /**
   * Stops taking jobs, lets current batches finish for up to shutdownTimeoutMs, then abandons
   * what is left (its transactions roll back; its kicks are redelivered), and closes connections.
   */
  async close(): Promise<void> {
    clearInterval(this.#sweepTimer);
    this.#stopping.abort();
    await this.#retention.stop();
    await this.#bullAdmissions?.close();
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
    await this.#admissionQueue.close();
    this.#bullConnection.disconnect();
    this.#redis.disconnect();
    await this.#pool.end();
    this.#log.info('worker stopped');
  }

  async #process(job: Job): Promise<DrainResult> {
    const { stream } = job.data as KickData;
    const result = await this.#drainWithPoisonRetries(stream);
    this.emit('drained', { stream, result });
    // Shutting down with batches left: make sure another worker picks the stream up now.
    if (result.kind === 'stopped') await kickStream(this.#queue, stream);
    return result;
  }

  /**
   * A whole batch added by a foreign producer: validated, then appended to its stream like any
   * other. A malformed job fails at once (nothing of it is written). Anything else is retried
   * here, in place, until it passes or the worker stops: failing the job would send it to the
   * back of the queue, behind later batches of its stream.
   */
  async #admit(job: Job): Promise<void> {
    if (job.name !== BATCH_JOB)
      throw new UnrecoverableError(`Unknown job name "${job.name}" (expected "${BATCH_JOB}")`);
    for (let attempt = 1; ; attempt++) {
      try {
        const data = typeof job.data === 'string' ? parseJobText(job.data) : job.data;
        const batchId = typeof data?.batchId === 'string' ? data.batchId : `bullmq-job-${job.id}`;
        const { stream, seq } = await this.#admission.enqueueJob({ ...data, batchId }, `Job ${job.id}`);
        this.emit('admitted', { jobId: String(job.id), stream, seq });
        return;
      } catch (error) {
        const reason = describeError(error);
        if (isPoison(error)) {
          this.#log.error({ jobId: job.id, reason }, 'malformed batch job refused');
          this.emit('parked', { stream: null, seq: null, reason });
          throw new UnrecoverableError(reason);
        }
        if (this.#stopping.signal.aborted) throw error; // stalls back to the head of the queue
        this.#log.warn({ jobId: job.id, reason, attempt }, 'batch job admission failed; retrying');
        await this.#pause(Math.min(30_000, 100 * 2 ** Math.min(attempt, 9)));
      }
    }
  }

  /** Waits `ms`, or less if the worker is stopping (then it returns at once). */
  async #pause(ms: number): Promise<void> {
    await sleep(ms, undefined, { signal: this.#stopping.signal }).catch(() => undefined);
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
          this.#log.warn({ stream, seq: error.seq, reason, attempt, poison }, 'batch failed; retrying');
          this.emit('retried', { stream, seq: error.seq, reason, poison });
          // `status` shows why the stream is not moving while it retries (cleared by a commit).
          await this.#store
            .setLastError(stream, `batch ${error.seq}, attempt ${attempt}: ${reason}`)
            .catch(() => undefined);
          if (!poison) throw error; // transient: BullMQ retries the kick with backoff
          await this.#pause(this.#options.poisonBackoffMs * 2 ** (attempt - 1));
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
