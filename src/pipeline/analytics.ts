// The consumer of the `analytics` follow-up queue (docs/decisions.md "Analytics"): each job carries
// one `inference_events` row (computed by the relay); the rows are written in batches, and each job
// completes only once the insert that carried its row has succeeded and the rollup rows of the
// batch's customers × models × hours have been recomputed after it. BullMQ runs one job per slot,
// so the worker runs as many slots as two batches hold: each job hands its row to a shared batch and
// waits for that batch's write — a batch is written when it is full or when its first row has
// waited ANALYTICS_FLUSH_MS — while the next batch fills. A failed insert or refresh fails every job
// of its batch; BullMQ retries them (exponential, capped backoff, no attempt limit) until ClickHouse
// takes them, and the store leaves out the rows it already has, so each event is written once — and
// the retry's refresh counts the rows an insert cut short did store. A batch refused while
// ClickHouse answers is split until the row it will not take fails alone.
import { toError } from "../core/errors.js";
import type { RedisClient } from "../infra/redis-client.js";
import type { Logger } from "pino";
import { Worker, type Job } from "bullmq";
import { rollupKeysOf, type AnalyticsSink, type InferenceEvent } from "../core/analytics-event.js";
import { retryDelayMs } from "../core/webhook-delivery.js";
import { ANALYTICS_QUEUE } from "../queues/keys.js";
import { coalescedRefresh } from "./rollup-refresh.js";

/** What a job of the `analytics` queue carries. */
export interface AnalyticsTask {
  readonly row: InferenceEvent;
}

/** The backoff type of analytics jobs (the worker computes the delay). */
export const ANALYTICS_BACKOFF = "analytics";
/** Attempts BullMQ allows an analytics job: never reached in practice (weeks at the longest pause). */
export const ANALYTICS_ATTEMPTS = 1_000_000;

/** Rows collected into inserts of at most `maxRows`, each written within `flushMs` of its first row. */
export interface AnalyticsBatcher {
  /**
   * Resolves once `row` is stored and its rollup row recomputed; rejects with the insert's or the
   * refresh's error (the job is then retried).
   */
  add(row: InferenceEvent): Promise<void>;
  /** Writes what is collected now and waits for the inserts in flight. */
  flush(): Promise<void>;
}

export function createAnalyticsBatcher(opts: {
  readonly sink: AnalyticsSink;
  readonly maxRows: number;
  readonly flushMs: number;
  /**
   * Whether the store answers: a batch it refuses while it answers is split in halves, and each
   * written on its own, so that one row it will never take fails alone, not its whole batch.
   * Default: never split.
   */
  readonly reachable?: () => Promise<boolean>;
  /** Called after each write (rows in the batch, rows new, ms insert and refresh took, or the error). */
  readonly onInsert?: (r: { rows: number; stored: number; ms: number; error?: Error }) => void;
}): AnalyticsBatcher {
  type Pending = { row: InferenceEvent; done: () => void; failed: (err: Error) => void };
  const refresh = coalescedRefresh(opts.sink);
  let pending: Pending[] = [];
  let timer: NodeJS.Timeout | undefined;
  const inFlight = new Set<Promise<void>>();

  async function insert(batch: readonly Pending[]): Promise<void> {
    const started = Date.now();
    try {
      const rows = batch.map((b) => b.row);
      const stored = await opts.sink.insert(rows);
      // every key of the batch, stored now or before: a row an earlier try stored but whose
      // refresh never ran (a kill, a failure) is counted by this one
      await refresh(rollupKeysOf(rows));
      opts.onInsert?.({ rows: batch.length, stored, ms: Date.now() - started });
      for (const b of batch) b.done();
    } catch (err) {
      const error = toError(err);
      if (batch.length > 1 && opts.reachable !== undefined && (await opts.reachable())) {
        const half = Math.ceil(batch.length / 2);
        await Promise.all([insert(batch.slice(0, half)), insert(batch.slice(half))]);
        return;
      }
      opts.onInsert?.({ rows: batch.length, stored: 0, ms: Date.now() - started, error });
      for (const b of batch) b.failed(error);
    }
  }

  function write(): void {
    clearTimeout(timer);
    timer = undefined;
    const batch = pending;
    pending = [];
    if (batch.length === 0) return;
    const run = insert(batch);
    inFlight.add(run);
    void run.finally(() => inFlight.delete(run));
  }

  return {
    add(row) {
      return new Promise<void>((done, failed) => {
        pending.push({ row, done, failed });
        if (pending.length >= opts.maxRows) write();
        else timer ??= setTimeout(write, opts.flushMs);
      });
    },
    async flush() {
      write();
      await Promise.all([...inFlight]);
    },
  };
}

export interface AnalyticsWorkerDeps {
  readonly sink: AnalyticsSink;
  /** Whether the store answers (see {@link createAnalyticsBatcher}). */
  readonly reachable?: () => Promise<boolean>;
  /** A connection for BullMQ's worker (closed by whoever opened it). */
  readonly connection: RedisClient;
  readonly prefix: string;
  /** ANALYTICS_BATCH: rows per insert at most. */
  readonly batch: number;
  /** ANALYTICS_FLUSH_MS. */
  readonly flushMs: number;
  /** ANALYTICS_RETRY_MAX_MS: the longest pause between two tries of a job. */
  readonly retryMaxMs: number;
  /** PIPELINE_LOCK_MS. */
  readonly lockMs: number;
  readonly logger: Logger;
  /** [0, 1) for the retry jitter; default Math.random. */
  readonly random?: () => number;
}

/** The running consumer; `close()` writes what it holds (or fails it back to the queue). Idempotent. */
export interface AnalyticsWorker {
  close(): Promise<void>;
}

/** A failed insert is reported once per outage, not once per job (a batch fails all its jobs). */
function outageReporter(
  log: Logger,
): (r: { rows: number; stored: number; ms: number; error?: Error }) => void {
  let down = false;
  return (r) => {
    if (r.error !== undefined) {
      if (!down)
        log.warn(
          { err: r.error.message, rows: r.rows },
          "analytics insert or rollup refresh failed; rows wait in the queue",
        );
      down = true;
      return;
    }
    if (down) log.info({ rows: r.rows }, "analytics inserts succeed again");
    down = false;
    log.debug({ rows: r.rows, stored: r.stored, ms: r.ms }, "analytics batch written");
  };
}

/** Starts the `analytics` worker; resolves once it is connected. */
export async function startAnalyticsWorker(deps: AnalyticsWorkerDeps): Promise<AnalyticsWorker> {
  const log = deps.logger.child({ part: "analytics" });
  const random = deps.random ?? Math.random;
  // forMs: no deadline (analytics jobs are retried until ClickHouse takes them)
  const schedule = { baseMs: Math.min(1_000, deps.retryMaxMs), maxMs: deps.retryMaxMs, forMs: Infinity };
  const batcher = createAnalyticsBatcher({
    sink: deps.sink,
    maxRows: deps.batch,
    flushMs: deps.flushMs,
    ...(deps.reachable === undefined ? {} : { reachable: deps.reachable }),
    onInsert: outageReporter(log),
  });
  const worker = new Worker<AnalyticsTask>(
    ANALYTICS_QUEUE,
    async (job: Job<AnalyticsTask>) => {
      await batcher.add(job.data.row);
    },
    {
      connection: deps.connection,
      prefix: deps.prefix,
      // two batches: one being written while the next fills
      concurrency: 2 * deps.batch,
      lockDuration: deps.lockMs,
      stalledInterval: deps.lockMs,
      // a job whose process died is run again, however often (the store keeps one row per event)
      maxStalledCount: 1_000,
      settings: {
        backoffStrategy: (attemptsMade, type) =>
          type === ANALYTICS_BACKOFF ? retryDelayMs(attemptsMade, schedule, random) : 1_000,
      },
    },
  );
  worker.on("error", (err) => log.warn({ err: err.message }, "analytics worker connection error"));
  await worker.waitUntilReady();
  let closing: Promise<void> | undefined;
  return {
    close() {
      closing ??= (async () => {
        // jobs in flight wait for a batch: write it now rather than after ANALYTICS_FLUSH_MS
        const closed = worker.close();
        await batcher.flush();
        await closed;
      })();
      return closing;
    },
  };
}
