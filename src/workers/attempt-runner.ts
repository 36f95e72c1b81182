// The attempt runner of one worker process: BullMQ's worker on the `render` queue. Each slot runs the
// attempt it was handed, then the attempts its settles start for it (chained, in the same slot,
// without a trip through the queue); attempts a settle starts for other slots go back to the queue.
import { Worker, type Job } from "bullmq";
import type { RedisClient } from "../infra/redis-client.js";
import { RENDER_QUEUE } from "../queues/keys.js";
import type { Attempt, BackendView } from "../queues/scheduler.js";
import type { AttemptQueue } from "./attempt-queue.js";
import { createRenderProcessor, type ProcessorDeps } from "./render-processor.js";
import type { SlotLedger } from "./slot-ledger.js";
import { within } from "./timers.js";

/** Pause of BullMQ's fetching after Redis answered one with an error reply. */
export const FETCH_PAUSE_MS = 1_000;

/** Minimum interval between stored progress events of one job. */
const PROGRESS_INTERVAL_MS = 200;

/** What the runner needs, besides what it gives the processor of each attempt itself. */
export interface AttemptRunnerDeps extends Omit<
  ProcessorDeps,
  "held" | "nextOffer" | "offerDone" | "progressIntervalMs"
> {
  /** Opens a connection for BullMQ's worker (called when it starts). */
  readonly bullConnection: () => RedisClient;
  readonly prefix: string;
  readonly concurrency: number;
  readonly lockMs: number;
  readonly stalledIntervalMs: number;
  readonly ledger: Pick<SlotLedger, "held" | "begin" | "end" | "reserveFree" | "release">;
  readonly attempts: Pick<AttemptQueue, "handOff" | "handBack">;
  /** The backends as the scheduler sees them, offered with each settle. */
  readonly views: () => readonly BackendView[];
  /** Engine to run each `family/model` on when several could. */
  readonly prefer: Readonly<Record<string, string>>;
  /** Asks the dispatcher for a pass. */
  readonly kick: () => void;
  /** Aborted when the worker begins to stop: settles offer nothing, chained attempts are handed back unbegun. */
  readonly stopping: AbortSignal;
}

export interface AttemptRunner {
  /** Creates BullMQ's worker; resolves once it is connected and fetching. */
  start(): Promise<void>;
  /**
   * Runs attempt `a`, started by this process's dispatcher for one of its free slots, here at once,
   * without the trip through BullMQ's queue; BullMQ's worker gives up one slot while it runs (so the
   * process still runs at most its concurrency). False, and nothing done, when it cannot: BullMQ's
   * worker is not running, the worker is stopping, or BullMQ would be left no slot.
   */
  runHere(a: Attempt): boolean;
  /**
   * Stops fetching and lets running attempts finish within `graceMs`, then aborts the rest
   * (`shutdown`: their settles hand them back); bounded, also with Redis gone.
   */
  close(graceMs: number): Promise<void>;
}

// A lost BullMQ lock or a stalled attempt job is expected after a pause or crash: the lease decides
// who owns the job, and the scheduler already requeued it.
const lockTrouble = (msg: string) => /lock|stalled more than allowable limit/i.test(msg);

export function createAttemptRunner(deps: AttemptRunnerDeps): AttemptRunner {
  const { ledger, attempts, stopping, logger: log } = deps;
  let worker: Worker<Attempt, void> | undefined;
  let fetchPause: NodeJS.Timeout | undefined;
  const run = createRenderProcessor({
    ...deps,
    held: ledger.held,
    // A settle offers its own slot (still counted as running) plus the free ones, which it reserves.
    // The own slot must not be reserved as well, or concurrent settles would each count the others'
    // slots twice and offer nothing. The settle's first attempt is then this slot's (see processJob).
    nextOffer: () =>
      stopping.aborted
        ? undefined
        : { slots: ledger.reserveFree() + 1, backends: deps.views(), prefer: deps.prefer },
    offerDone: (offer) => ledger.release(offer.slots - 1),
    progressIntervalMs: PROGRESS_INTERVAL_MS,
  });

  /** Attempts run here without BullMQ (runHere), until they and their chains end. */
  const direct = new Set<Promise<void>>();
  /**
   * Attempt jobs BullMQ's worker has taken (moved to active: its `active` event) and not yet finished
   * processing; one taken but not begun yet counts too. A job BullMQ failed without processing it
   * stays counted: runHere is then only more careful.
   */
  let bullTaken = 0;

  // Nothing is returned to BullMQ: the completed attempt job is removed at once, and the scheduler
  // holds the job's record.
  async function processJob(job: Job<Attempt>): Promise<void> {
    try {
      await runSlot(job.data);
    } finally {
      bullTaken--;
    }
  }

  /** One slot's work: attempt `first`, then the attempts its settles start for this slot. */
  async function runSlot(first: Attempt): Promise<void> {
    ledger.begin(first.id);
    let offered = false;
    try {
      let attempt: Attempt | undefined = first;
      while (attempt) {
        const result = await run(attempt);
        offered = result.offered;
        // The settle started this slot's next attempt: it runs here, in the same slot, without a
        // round trip through the queue (docs/decisions.md "Chained attempts"). Attempts for the
        // other free slots go to the queue, where the idle slots wait.
        if (stopping.aborted) {
          // Started by a settle sent before the worker began to stop: back to their places
          // unbegun, no attempt spent.
          await Promise.all(result.next.map(attempts.handBack));
          break;
        }
        const [mine, ...others] = result.next;
        if (others.length > 0) attempts.handOff(others);
        attempt = mine;
      }
    } finally {
      ledger.end();
      // A settle that offered this slot already started the next attempt; otherwise look.
      if (!offered) deps.kick();
    }
  }

  /**
   * BullMQ's worker waits before fetching again only after a connection error; after an error reply
   * it fetches again at once. With Redis at its maxmemory (OOM refuses the fetch script's writes) an
   * idle worker spun: thousands of Redis calls and warnings a second. After an error reply, fetching
   * pauses for {@link FETCH_PAUSE_MS} (attempts already running go on).
   */
  function pauseFetchesAfter(err: Error): void {
    const w = worker;
    if (err.name !== "ReplyError" || w === undefined || fetchPause !== undefined || stopping.aborted) return;
    void w.pause(true).catch(() => undefined);
    fetchPause = setTimeout(() => {
      fetchPause = undefined;
      if (!stopping.aborted) w.resume().catch(() => undefined);
    }, FETCH_PAUSE_MS);
    fetchPause.unref();
  }

  /**
   * Lowering BullMQ's concurrency does not recall the fetch it may have waiting already (it keeps one
   * in flight while below its concurrency), which can bring an attempt another process handed off: a
   * sync attempt runs here only while that fetch, too, would leave the process within its
   * concurrency — the attempts BullMQ took, those run here, this one and one fetch.
   */
  function runHere(a: Attempt): boolean {
    const w = worker;
    if (w === undefined || stopping.aborted || bullTaken + direct.size + 2 > deps.concurrency) return false;
    w.concurrency -= 1;
    log.debug({ job: a.id, attempt: a.attempt }, "sync attempt runs in this process, without BullMQ");
    const running: Promise<void> = runSlot(a)
      .catch((err: unknown) => log.error({ err, job: a.id }, "attempt run here failed unexpectedly"))
      .finally(() => {
        direct.delete(running);
        w.concurrency += 1;
      });
    direct.add(running);
    return true;
  }

  return {
    runHere,

    async start() {
      const w = new Worker<Attempt, void>(RENDER_QUEUE, processJob, {
        connection: deps.bullConnection(),
        prefix: deps.prefix,
        concurrency: deps.concurrency,
        lockDuration: deps.lockMs,
        stalledInterval: deps.stalledIntervalMs,
        // A stalled attempt is not re-run by BullMQ: its lease expires and the scheduler requeues
        // the job with a new token, so exactly one attempt can ever settle it.
        maxStalledCount: 0,
        autorun: true,
      });
      worker = w;
      w.on("active", () => bullTaken++);
      w.on("error", (err) => {
        if (lockTrouble(err.message)) {
          log.info({ err: err.message }, "attempt no longer held by this worker");
          return;
        }
        log.warn({ err: err.message }, "worker connection error");
        pauseFetchesAfter(err);
      });
      w.on("failed", (job, err) =>
        lockTrouble(err.message)
          ? log.info(
              { attempt: job?.id, err: err.message },
              "attempt job given up by BullMQ (the lease decides)",
            )
          : log.error({ err, attempt: job?.id }, "attempt job failed unexpectedly"),
      );
      await w.waitUntilReady();
    },

    async close(graceMs) {
      if (worker) {
        const held = ledger.held;
        // Finish what runs within the grace period, then hand the rest back (no attempt spent).
        const closing = worker.close();
        const graceTimer = setTimeout(() => {
          for (const h of held.values()) h.abort("shutdown");
        }, graceMs);
        // With nothing running, BullMQ's close only talks to Redis: do not wait long for it. The
        // attempts run here without BullMQ end within the same grace.
        await within(Promise.all([closing, ...direct]), held.size === 0 ? 2_000 : graceMs + 5_000);
        clearTimeout(graceTimer);
        if (held.size > 0) {
          log.warn(
            { attempts: held.size },
            "attempts still unsettled at exit; their leases expire and the jobs are requeued",
          );
        }
      }
      if (fetchPause) clearTimeout(fetchPause);
    },
  };
}
