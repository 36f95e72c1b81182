// The worker role: a BullMQ worker running started attempts, the dispatcher feeding it in the
// scheduler's order (and each settled attempt starting the slot's next one in the same step, which
// then runs in that slot, chained), lease renewal
// (which doubles as the cancel fallback), the cancel relay, the lease reaper and ttl expiry, and
// the publication of backend state. Shutdown is ordered and bounded.
import { Queue, Worker, type Job } from "bullmq";
import type { Redis } from "ioredis";
import type { Logger } from "pino";
import { attemptId } from "../core/attempt-id.js";
import type { Clock } from "../core/time.js";
import type { BlobStore } from "../core/ports.js";
import type { BackendDirectory } from "../queues/backend-directory.js";
import { mayHaveRun } from "../queues/call-outcome.js";
import { RENDER_QUEUE } from "../queues/keys.js";
import type { Attempt, BackendView, NextOffer, Scheduler } from "../queues/scheduler.js";
import type { Registry } from "./backends/registry.js";
import type { Breakers } from "./backends/breakers.js";
import type { HealthPoller } from "./backends/health.js";
import { createRenderProcessor, type BackendGuard, type HeldAttempt } from "./render-processor.js";

export interface WorkerServiceOptions {
  readonly workerId: string;
  readonly prefix: string;
  /** Connections: `redis` for our scripts (worker profile), `subscriber` for channels, `bullmq` factory. */
  readonly redis: Redis;
  readonly subscriber: Redis;
  readonly bullConnection: () => Redis;
  readonly scheduler: Scheduler;
  readonly registry: Registry;
  readonly directory: BackendDirectory;
  readonly blobs: BlobStore;
  readonly clock: Clock;
  readonly logger: Logger;
  readonly concurrency: number;
  readonly lockMs: number;
  readonly stalledIntervalMs: number;
  readonly backoff: { readonly baseMs: number; readonly maxMs: number };
  readonly busyCooldownMs: number;
  readonly publishIntervalMs: number;
  readonly breakers?: Breakers;
  readonly health?: HealthPoller;
  readonly dispatchIntervalMs?: number;
  /** Engine to run each `family/model` on when several could (the catalogue's default backend). */
  readonly preferredEngine?: Readonly<Record<string, string>>;
}

export interface WorkerService {
  start(): Promise<void>;
  /** Stops taking jobs, lets running attempts finish within `graceMs`, hands back the rest. */
  stop(graceMs: number): Promise<void>;
  /** Attempts running in this process. */
  readonly held: ReadonlyMap<string, HeldAttempt>;
  /** Runs a dispatch pass now (tests, and after a backend recovers). */
  kick(): void;
}

/** Pause of dispatching after BullMQ refused the attempts handed to it. */
const HAND_RETRY_MS = 1_000;
/** Pause of BullMQ's fetching after Redis answered one with an error reply. */
const FETCH_PAUSE_MS = 1_000;

export function createWorkerService(o: WorkerServiceOptions): WorkerService {
  const log = o.logger.child({ worker: o.workerId });
  const breakers = o.breakers;
  const held = new Map<string, HeldAttempt>();
  let active = 0;
  let stopping = false;
  let stopped: Promise<void> | undefined;
  const timers: NodeJS.Timeout[] = [];
  const queue = new Queue<Attempt>(RENDER_QUEUE, { connection: o.bullConnection(), prefix: o.prefix });
  queue.on("error", (err) => log.warn({ err: err.message }, "queue connection error"));

  // Attempts this process started and handed to BullMQ that no processor here has begun. Their
  // leases are renewed here for one lock period, which covers the wait in BullMQ (a slot was free
  // when they were handed, so some processor takes each within milliseconds); not longer, because
  // the processor that took one may be in another process, and if that process dies its lease
  // must run out. They count against this process's free slots for a second.
  const handed = new Map<string, { token: string; backend: string; at: number }>();
  // Slots promised to a dispatch or settle call still in flight, so two calls never offer the same.
  let reserved = 0;
  /** No dispatch before this time: BullMQ just refused attempts (see hand). */
  let dispatchPausedUntil = 0;
  const freeSlots = () => {
    const now = o.clock();
    let recent = 0;
    for (const h of handed.values()) if (now - h.at <= 1_000) recent++;
    return o.concurrency - active - recent - reserved;
  };
  // Remembered for a minute so an attempt not yet begun here skips its backend call: job ids
  // cancelled on the channel (a cancelled job never runs again), and attempts ("id|token") that
  // renewal found no longer current (attempt ids: their job may run again, under another token).
  const doomed = new Map<string, number>();
  const noteDoomed = (key: string) => {
    const now = o.clock();
    doomed.set(key, now);
    for (const [k, at] of doomed) if (now - at > 60_000) doomed.delete(k);
  };

  // The backends as the scheduler's scripts see them: one array per state (health, breakers, model
  // readiness), which the scheduler then encodes once. The preferences never change.
  const prefer = o.preferredEngine ?? {};
  let viewsKey = "";
  let viewsCache: BackendView[] = [];
  const views = (): BackendView[] => {
    const entries = o.registry.list();
    const key = entries
      .map(
        (e) =>
          `${e.healthy ? 1 : 0}${breakers && !breakers.admits(e.config.id) ? 0 : 1}${[...e.notReady].join(",")}`,
      )
      .join("|");
    if (key !== viewsKey) {
      viewsKey = key;
      viewsCache = entries.map((e) => ({
        id: e.config.id,
        cap: e.config.capacity,
        engine: e.config.engine,
        models: e.notReady.size === 0 ? e.config.models : e.config.models.filter((m) => !e.notReady.has(m)),
        ok: e.healthy && (breakers ? breakers.admits(e.config.id) : true),
      }));
    }
    return viewsCache;
  };

  const runAttempt = createRenderProcessor({
    scheduler: o.scheduler,
    registry: o.registry,
    blobs: o.blobs,
    clock: o.clock,
    logger: log,
    held,
    doomed: (a) => doomed.has(a.id) || doomed.has(attemptId(a)),
    ...(breakers ? { guard: ((id, call) => breakers.run(id, call)) satisfies BackendGuard } : {}),
    ...(o.health ? { onUnreachable: (id: string) => o.health?.markDown(id) } : {}),
    // A settle offers its own slot (still counted as active) plus the free ones, which it reserves.
    // The own slot must not be reserved as well, or concurrent settles would each count the others'
    // slots twice and offer nothing.
    nextOffer: (): NextOffer | undefined => {
      if (stopping) return undefined;
      const extra = Math.max(0, freeSlots());
      reserved += extra;
      return { slots: extra + 1, backends: views(), prefer };
    },
    offerDone: (offer) => {
      reserved -= offer.slots - 1;
    },
    backoff: o.backoff,
    busyCooldownMs: o.busyCooldownMs,
    progressIntervalMs: 200,
  });

  let worker: Worker<Attempt, void> | undefined;

  /**
   * Puts started attempts on the BullMQ queue; a worker process (usually this one) runs each. When
   * Redis refuses them with an error reply (at its maxmemory it refuses BullMQ's writes, while our
   * scripts, which delete first, still start attempts), they are handed back unbegun — no attempt
   * spent — and dispatching pauses for {@link HAND_RETRY_MS}: left alone, their leases would run out
   * and each job would be reaped as a lost attempt, again and again until it failed `worker_lost`.
   * @throws the BullMQ error (after handing the attempts back when that was surely nothing added).
   */
  async function hand(attempts: readonly Attempt[]): Promise<void> {
    const now = o.clock();
    for (const a of attempts) handed.set(a.id, { token: a.token, backend: a.backend, at: now });
    try {
      await queue.addBulk(
        attempts.map((a) => ({
          name: a.route,
          data: a,
          opts: {
            jobId: attemptId(a),
            attempts: 1,
            // The job record lives in the scheduler; a completed attempt has nothing left to tell.
            removeOnComplete: true,
            removeOnFail: { count: 5000 },
          },
        })),
      );
    } catch (err) {
      if (!mayHaveRun(err)) {
        dispatchPausedUntil = o.clock() + HAND_RETRY_MS;
        for (const a of attempts) {
          handed.delete(a.id);
          // Should BullMQ have taken some of a batch after all, this process never begins them
          // (and renewal stops them in any other within a second).
          noteDoomed(attemptId(a));
        }
        await Promise.all(attempts.map(handBack));
      }
      throw err;
    }
  }

  function handOff(attempts: readonly Attempt[]): void {
    hand(attempts).catch((err: unknown) => log.warn({ err }, "handing attempts to BullMQ failed"));
  }

  /** Gives a started attempt back unbegun: the job returns to its place, no attempt spent. */
  async function handBack(a: Pick<Attempt, "id" | "token" | "backend">): Promise<void> {
    await o.scheduler.finish(a.id, a.token, a.backend, "busy", {}).catch((err: unknown) => {
      log.warn({ err, job: a.id }, "hand-back failed; the lease expires and the job is requeued");
    });
  }

  // ---- dispatcher: feeds the BullMQ queue in the scheduler's order, only as far as slots allow
  let dispatching: Promise<void> | undefined;
  let again = false;

  async function dispatchPass(): Promise<void> {
    do {
      again = false;
      if (stopping || o.clock() < dispatchPausedUntil) return;
      const free = freeSlots();
      if (free <= 0) return;
      reserved += free;
      let started: Attempt[];
      try {
        started = await o.scheduler.dispatch(free, views(), prefer);
      } finally {
        reserved -= free;
      }
      if (started.length === 0) return;
      await hand(started);
      if (started.length === free) again = true;
    } while (again);
  }

  function kick(): void {
    if (stopping) return;
    if (dispatching) {
      again = true;
      return;
    }
    dispatching = dispatchPass()
      .catch((err: unknown) => log.warn({ err }, "dispatch failed"))
      .finally(() => {
        dispatching = undefined;
        if (again) kick();
      });
  }

  const onMessage = (channel: string, message: string) => {
    if (channel === o.scheduler.keys.wakeChannel) kick();
    else if (channel === o.scheduler.keys.cancelChannel) {
      noteDoomed(message);
      held.get(message)?.abort("cancelled");
    }
  };

  async function renew(): Promise<void> {
    const entries = [...held.entries()].map(([id, h]) => ({ id, token: h.token, backend: h.backend }));
    const now = o.clock();
    for (const [id, h] of handed) {
      if (now - h.at >= o.lockMs) handed.delete(id);
      else if (!held.has(id)) entries.push({ id, token: h.token, backend: h.backend });
    }
    if (entries.length === 0) return;
    const tokens = new Map(entries.map((e) => [e.id, e.token]));
    for (const id of await o.scheduler.renew(entries)) {
      // This attempt is over (its job was cancelled, finished elsewhere, or reaped after our lease
      // expired): stop its backend call here, and never begin it should BullMQ hand it to us later.
      handed.delete(id);
      noteDoomed(attemptId({ id, token: tokens.get(id) ?? "" }));
      held.get(id)?.abort("cancelled");
    }
  }

  async function housekeeping(): Promise<void> {
    const reaped = await o.scheduler.reap();
    const expired = await o.scheduler.expire();
    if (reaped > 0) log.warn({ reaped }, "requeued jobs whose lease expired");
    if (reaped > 0 || expired > 0) kick();
  }

  async function publish(): Promise<void> {
    await o.directory.publish(
      o.workerId,
      o.registry.list().map((e) => ({
        id: e.config.id,
        engine: e.config.engine,
        capacity: e.config.capacity,
        models: e.config.models,
        streaming: e.config.streaming,
        healthy: e.healthy,
      })),
      breakers?.states() ?? {},
    );
  }

  // A periodic task never overlaps itself: while Redis is away its calls wait in the offline queue,
  // and piling up one per tick would flood Redis when it returns.
  const every = (ms: number, fn: () => Promise<void>, what: string) => {
    let busy = false;
    const t = setInterval(() => {
      if (busy) return;
      busy = true;
      fn()
        .catch((err: unknown) =>
          log.warn({ err: err instanceof Error ? err.message : String(err) }, `${what} failed`),
        )
        .finally(() => {
          busy = false;
        });
    }, ms);
    t.unref();
    timers.push(t);
    return t;
  };
  let renewTimer: NodeJS.Timeout | undefined;

  /**
   * BullMQ's worker waits before fetching again only after a connection error; after an error reply
   * it fetches again at once. With Redis at its maxmemory (OOM refuses the fetch script's writes) an
   * idle worker spun: thousands of Redis calls and warnings a second. After an error reply, fetching
   * pauses for {@link FETCH_PAUSE_MS} (attempts already running go on).
   */
  let fetchPause: NodeJS.Timeout | undefined;
  function pauseFetchesAfter(err: Error): void {
    const w = worker;
    if (err.name !== "ReplyError" || w === undefined || fetchPause !== undefined || stopping) return;
    void w.pause(true).catch(() => undefined);
    fetchPause = setTimeout(() => {
      fetchPause = undefined;
      if (!stopping) void w.resume();
    }, FETCH_PAUSE_MS);
    fetchPause.unref();
  }

  // Every wait of the shutdown is bounded: with Redis gone, its calls would wait in the offline queue.
  const within = (p: Promise<unknown> | undefined, ms: number) =>
    Promise.race([p?.catch(() => undefined), new Promise<void>((r) => setTimeout(r, ms).unref())]);

  /** Attempts handed to BullMQ that no process began: taken off the queue and handed back. */
  async function handBackWaiting(): Promise<void> {
    for (const [id, h] of handed) {
      if (held.has(id)) continue;
      const removed = await queue.remove(attemptId({ id, token: h.token })).catch(() => 0);
      if (removed === 1) {
        await handBack({ id, token: h.token, backend: h.backend });
        handed.delete(id);
      }
    }
  }

  async function stopNow(graceMs: number): Promise<void> {
    stopping = true;
    // Leases of the attempts still running stay renewed until they are settled or handed back.
    for (const t of timers) if (t !== renewTimer) clearInterval(t);
    o.health?.stop();
    await within(dispatching, 1_000);
    if (worker) {
      // Finish what runs within the grace period, then hand the rest back (no attempt spent).
      const closing = worker.close();
      const graceTimer = setTimeout(() => {
        for (const h of held.values()) h.abort("shutdown");
      }, graceMs);
      // With nothing running, BullMQ's close only talks to Redis: do not wait long for it.
      await within(closing, held.size === 0 ? 2_000 : graceMs + 5_000);
      clearTimeout(graceTimer);
      if (held.size > 0) {
        log.warn(
          { attempts: held.size },
          "attempts still unsettled at exit; their leases expire and the jobs are requeued",
        );
      }
    }
    await within(handBackWaiting(), 2_000);
    // The cancel relay stays until here: cancels during the grace period abort at once.
    o.subscriber.off("message", onMessage);
    if (renewTimer) clearInterval(renewTimer);
    if (fetchPause) clearTimeout(fetchPause);
    await within(o.directory.forget(o.workerId), 1_000);
    await within(queue.close(), 2_000);
    breakers?.shutdown();
    log.info("worker stopped");
  }

  return {
    held,
    kick,

    async start() {
      // Everything that settles, renews or cancels attempts is in place before BullMQ hands any.
      if (o.health) {
        await o.health.checkAll();
        o.health.onRecovered(() => kick());
        o.health.start(o.publishIntervalMs);
      }
      breakers?.onChange((_id, state) => {
        if (state !== "open") kick();
        publish().catch(() => undefined);
      });
      o.subscriber.on("message", onMessage);
      await o.subscriber.subscribe(o.scheduler.keys.wakeChannel, o.scheduler.keys.cancelChannel);
      renewTimer = every(Math.max(100, Math.min(1_000, Math.floor(o.lockMs / 3))), renew, "lease renewal");
      every(o.stalledIntervalMs, housekeeping, "lease reaping");
      every(o.dispatchIntervalMs ?? 250, async () => kick(), "dispatch");
      every(o.publishIntervalMs, publish, "backend publication");
      await publish().catch((err: unknown) => log.warn({ err }, "backend publication failed"));

      worker = new Worker<Attempt, void>(
        RENDER_QUEUE,
        // Nothing is returned to BullMQ: the completed attempt job is removed at once, and the
        // scheduler holds the job's record.
        async (job: Job<Attempt>) => {
          active++;
          handed.delete(job.data.id);
          let offered = false;
          try {
            let attempt: Attempt | undefined = job.data;
            while (attempt) {
              const result = await runAttempt(attempt);
              offered = result.offered;
              // The settle started this slot's next attempt: it runs here, in the same slot, without
              // a round trip through the queue (docs/decisions.md "Chained attempts"). Attempts for
              // the other free slots go to the queue, where the idle slots wait.
              if (stopping) {
                // Started by a settle sent before the worker began to stop: back to their places
                // unbegun, no attempt spent.
                await Promise.all(result.next.map(handBack));
                break;
              }
              const [mine, ...others] = result.next;
              if (others.length > 0) handOff(others);
              attempt = mine;
            }
          } finally {
            active--;
            // A settle that offered this slot already started the next attempt; otherwise look.
            if (!offered) kick();
          }
        },
        {
          connection: o.bullConnection(),
          prefix: o.prefix,
          concurrency: o.concurrency,
          lockDuration: o.lockMs,
          stalledInterval: o.stalledIntervalMs,
          // A stalled attempt is not re-run by BullMQ: its lease expires and the scheduler requeues
          // the job with a new token, so exactly one attempt can ever settle it.
          maxStalledCount: 0,
          autorun: true,
        },
      );
      // A lost BullMQ lock or a stalled attempt job is expected after a pause or crash: the lease
      // decides who owns the job, and the scheduler already requeued it.
      const lockTrouble = (msg: string) => /lock|stalled more than allowable limit/i.test(msg);
      worker.on("error", (err) => {
        if (lockTrouble(err.message)) {
          log.info({ err: err.message }, "attempt no longer held by this worker");
          return;
        }
        log.warn({ err: err.message }, "worker connection error");
        pauseFetchesAfter(err);
      });
      worker.on("failed", (job, err) =>
        lockTrouble(err.message)
          ? log.info(
              { attempt: job?.id, err: err.message },
              "attempt job given up by BullMQ (the lease decides)",
            )
          : log.error({ err, attempt: job?.id }, "attempt job failed unexpectedly"),
      );
      await worker.waitUntilReady();
      kick();
      log.info({ concurrency: o.concurrency, backends: o.registry.list().length }, "worker started");
    },

    stop(graceMs) {
      stopped ??= stopNow(graceMs);
      return stopped;
    },
  };
}
