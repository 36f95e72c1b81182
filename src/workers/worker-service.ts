// The worker role: a BullMQ worker running started attempts, the dispatcher feeding it in the
// scheduler's order (and each settled attempt starting the next in the same step), lease renewal
// (which doubles as the cancel fallback), the cancel relay, the lease reaper and ttl expiry, and
// the publication of backend state. Shutdown is ordered and bounded.
import { Queue, Worker, type Job } from "bullmq";
import type { Redis } from "ioredis";
import type { Logger } from "pino";
import type { Clock } from "../core/time.js";
import type { BlobStore } from "../core/ports.js";
import type { BackendDirectory } from "../queues/backend-directory.js";
import { RENDER_QUEUE } from "../queues/keys.js";
import type { Attempt, BackendView, Scheduler } from "../queues/scheduler.js";
import type { Registry } from "./backends/registry.js";
import type { Breakers } from "./backends/breakers.js";
import type { HealthPoller } from "./backends/health.js";
import {
  createRenderProcessor,
  type AttemptResult,
  type BackendGuard,
  type HeldAttempt,
} from "./render-processor.js";

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

export function createWorkerService(o: WorkerServiceOptions): WorkerService {
  const log = o.logger.child({ worker: o.workerId });
  const breakers = o.breakers;
  const held = new Map<string, HeldAttempt>();
  let active = 0;
  let stopping = false;
  const timers: NodeJS.Timeout[] = [];
  const queue = new Queue<Attempt>(RENDER_QUEUE, { connection: o.bullConnection(), prefix: o.prefix });
  queue.on("error", (err) => log.warn({ err }, "queue connection error"));

  // Attempts this process handed to BullMQ that no processor here has started yet: they will take
  // a slot here or elsewhere soon, so they are not offered again. Forgotten after a second.
  const pending = new Map<string, number>();
  const freeSlots = () => {
    const now = o.clock();
    for (const [id, at] of pending) if (now - at > 1_000) pending.delete(id);
    return o.concurrency - active - pending.size;
  };
  // Cancels heard on the channel, remembered for a minute so an attempt not yet begun here skips
  // its backend call.
  const cancelled = new Map<string, number>();

  const process = createRenderProcessor({
    scheduler: o.scheduler,
    registry: o.registry,
    blobs: o.blobs,
    clock: o.clock,
    logger: log,
    held,
    cancelled,
    ...(breakers ? { guard: ((id, call) => breakers.run(id, call)) satisfies BackendGuard } : {}),
    ...(o.health ? { onUnreachable: (id: string) => o.health?.markDown(id) } : {}),
    // The processor settling an attempt still counts as active: its own slot is free too.
    nextOffer: () =>
      stopping ? undefined : { slots: freeSlots() + 1, backends: views(), prefer: o.preferredEngine ?? {} },
    onNext: (attempts) => {
      hand(attempts).catch((err: unknown) => log.warn({ err }, "handing attempts to BullMQ failed"));
    },
    backoff: o.backoff,
    busyCooldownMs: o.busyCooldownMs,
    progressIntervalMs: 200,
  });

  let worker: Worker<Attempt, AttemptResult> | undefined;

  /** Puts started attempts on the BullMQ queue; a worker process (usually this one) runs each. */
  async function hand(attempts: readonly Attempt[]): Promise<void> {
    const now = o.clock();
    for (const a of attempts) pending.set(a.id, now);
    await queue.addBulk(
      attempts.map((a) => ({
        name: a.route,
        data: a,
        opts: {
          jobId: `${a.id}-${a.token}`,
          attempts: 1,
          // The job record lives in the scheduler; a completed attempt has nothing left to tell.
          removeOnComplete: true,
          removeOnFail: { count: 5000 },
        },
      })),
    );
  }

  // ---- dispatcher: feeds the BullMQ queue in the scheduler's order, only as far as slots allow
  let dispatching: Promise<void> | undefined;
  let again = false;
  const views = (): BackendView[] =>
    o.registry.list().map((e) => ({
      id: e.config.id,
      cap: e.config.capacity,
      engine: e.config.engine,
      models: e.notReady.size === 0 ? e.config.models : e.config.models.filter((m) => !e.notReady.has(m)),
      ok: e.healthy && (o.breakers ? o.breakers.admits(e.config.id) : true),
    }));

  async function dispatchPass(): Promise<void> {
    do {
      again = false;
      if (stopping) return;
      const free = freeSlots();
      if (free <= 0) return;
      const started = await o.scheduler.dispatch(free, views(), o.preferredEngine);
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
      const now = o.clock();
      cancelled.set(message, now);
      for (const [id, at] of cancelled) if (now - at > 60_000) cancelled.delete(id);
      held.get(message)?.abort("cancelled");
    }
  };

  async function renew(): Promise<void> {
    const entries = [...held.entries()].map(([id, h]) => ({ id, token: h.token, backend: h.backend }));
    if (entries.length === 0) return;
    const lost = await o.scheduler.renew(entries);
    for (const id of lost) {
      const h = held.get(id);
      // The job moved on (cancelled, or reaped after our lease expired): stop its backend call.
      h?.abort("cancelled");
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
        updatedAt: 0,
      })),
      o.breakers?.states() ?? {},
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

  return {
    held,
    kick,

    async start() {
      worker = new Worker<Attempt, AttemptResult>(
        RENDER_QUEUE,
        async (job: Job<Attempt>, _token?: string, signal?: AbortSignal) => {
          active++;
          pending.delete(job.data.id);
          try {
            return await process(job.data, signal);
          } finally {
            active--;
            kick();
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
      worker.on("error", (err) =>
        lockTrouble(err.message)
          ? log.info({ err: err.message }, "attempt no longer held by this worker")
          : log.warn({ err: err.message }, "worker connection error"),
      );
      worker.on("failed", (job, err) =>
        lockTrouble(err.message)
          ? log.info(
              { attempt: job?.id, err: err.message },
              "attempt job given up by BullMQ (the lease decides)",
            )
          : log.error({ err, attempt: job?.id }, "attempt job failed unexpectedly"),
      );
      await worker.waitUntilReady();
      if (o.health) {
        await o.health.checkAll();
        o.health.onRecovered(() => kick());
        o.health.start(o.publishIntervalMs);
      }
      o.breakers?.onChange((_id, state) => {
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
      kick();
      log.info({ concurrency: o.concurrency, backends: o.registry.list().length }, "worker started");
    },

    async stop(graceMs) {
      if (stopping) return;
      stopping = true;
      // Leases of the attempts still running stay renewed until they are settled (or handed back).
      for (const t of timers) if (t !== renewTimer) clearInterval(t);
      o.health?.stop();
      o.subscriber.off("message", onMessage);
      // Every wait below is bounded: with Redis gone, its calls would wait in the offline queue forever.
      const within = (p: Promise<unknown> | undefined, ms: number) =>
        Promise.race([p?.catch(() => undefined), new Promise<void>((r) => setTimeout(r, ms).unref())]);
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
          await within(worker.close(true), 1_000);
        }
      }
      if (renewTimer) clearInterval(renewTimer);
      await within(queue.close(), 2_000);
      o.breakers?.shutdown();
      log.info("worker stopped");
    },
  };
}
