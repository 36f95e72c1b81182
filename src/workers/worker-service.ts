// The worker role's service: composes this process's parts — slot ledger, lease keeper (renewal and
// cancel relay), attempt queue (hand-offs to BullMQ), dispatcher, attempt runner (BullMQ's worker,
// chaining) and housekeeping — starts them in order and stops them in order, bounded.
import type { RedisClient } from "../infra/redis-client.js";
import type { Logger } from "pino";
import type { WorkerRecorder } from "../core/metrics.js";
import type { Clock } from "../core/time.js";
import type { BlobStore } from "../core/ports.js";
import type { OutputHandover } from "../core/output-handover.js";
import type { SettleSignal } from "../core/settle-signal.js";
import type { HeadSignal } from "../core/head-signal.js";
import type { BackendDirectory } from "../queues/backend-directory.js";
import type { Scheduler } from "../queues/scheduler.js";
import type { WorkerSlots } from "../queues/worker-slots.js";
import type { Registry } from "./backends/registry.js";
import type { Breakers } from "./backends/breakers.js";
import type { HealthPoller } from "./backends/health.js";
import { createAttemptQueue } from "./attempt-queue.js";
import { createAttemptRunner } from "./attempt-runner.js";
import { createBackendViews } from "./backend-views.js";
import { createDispatcher } from "./dispatcher.js";
import { createHousekeeping } from "./housekeeping.js";
import { createLeaseKeeper } from "./lease-keeper.js";
import type { BackendGuard, HeldAttempt } from "./render-processor.js";
import { createSlotLedger } from "./slot-ledger.js";
import type { SyncOutputWriter } from "./sync-output-writer.js";
import { within } from "./timers.js";

/** The suffix of an admission's wake message (`"<id> admitted"`, queues/lua/admit.lua). */
const ADMITTED = " admitted";
/** Admissions told of by the api role whose wake message is still to come, at most. */
const HEARD_MAX = 1_000;

export interface WorkerServiceOptions {
  readonly workerId: string;
  readonly prefix: string;
  /** Connections: `subscriber` for the wake and cancel channels, `bullConnection` opens one for BullMQ. */
  readonly subscriber: RedisClient;
  readonly bullConnection: () => RedisClient;
  readonly scheduler: Scheduler;
  /**
   * With pools: the broker of the deployment-wide running limit (docs/decisions.md "Pools"), run
   * whenever a permit is released anywhere (published on `channel`); the scheduler runs it after
   * every dispatch too.
   */
  readonly permits?: { readonly channel: string; readonly grant: () => Promise<void> };
  readonly registry: Registry;
  readonly directory: BackendDirectory;
  /** Where this process announces its slots for the API's capacity (renewed within every LOCK_MS). */
  readonly workerSlots: WorkerSlots;
  readonly blobs: BlobStore;
  /** Where a sync attempt's output is left for the API of this process (when it runs one). */
  readonly handover?: Pick<OutputHandover, "hold">;
  /** Told of each terminal settle (the api role of this process). */
  readonly settles?: Pick<SettleSignal, "settled">;
  /** Admissions at the head of the queue by the api role of this process: a pass starts at once. */
  readonly heads?: Pick<HeadSignal, "subscribe">;
  /**
   * Writes sync outputs out after their settle (given to the attempts only with SYNC_OUTPUT_IN_REDIS);
   * `outputSweep` writes out copies left in Redis, whatever that setting (see sync-output-writer.ts).
   */
  readonly syncOutputs?: Pick<SyncOutputWriter, "writeOut">;
  readonly outputSweep?: SyncOutputWriter;
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
  /** The process's metrics: attempts, settles, reaps. */
  readonly metrics: WorkerRecorder;
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
  const { scheduler, breakers, health } = o;
  const logger = o.logger.child({ worker: o.workerId });
  // Aborted when stop begins: from then on no part starts anything new.
  const halt = new AbortController();
  const stopping = halt.signal;
  let stopped: Promise<void> | undefined;

  // Each part takes what it needs of the options (its deps name them) and the parts before it.
  const ledger = createSlotLedger(o);
  const leases = createLeaseKeeper({ ...o, ledger, logger });
  const attempts = createAttemptQueue({ ...o, connection: o.bullConnection(), ledger, leases, logger });
  const views = createBackendViews(o.registry, breakers);
  const prefer = o.preferredEngine ?? {};
  const dispatcher = createDispatcher({
    ...o,
    ledger,
    attempts,
    views,
    prefer,
    stopping,
    logger,
    runHere: (a) => runner.runHere(a),
  });
  const kick = dispatcher.kick;
  const runner = createAttemptRunner({
    ...o,
    ledger,
    attempts,
    views,
    prefer,
    kick,
    stopping,
    logger,
    doomed: leases.isDoomed,
    ...(breakers ? { guard: ((id, call) => breakers.run(id, call)) satisfies BackendGuard } : {}),
    ...(health ? { onUnreachable: (id: string) => health.markDown(id) } : {}),
  });
  const housekeeping = createHousekeeping({ ...o, kick, logger });

  const grantPermits = () => {
    o.permits?.grant().catch((err: unknown) => logger.warn({ err }, "permit grant failed"));
  };
  // Jobs whose admission this process's api role told of (a pass ran then), until their wake message
  // comes: that message starts no second pass (core/head-signal.ts). Only an admission's message is
  // looked up, so an id left here (its message came first, or was lost) can never skip another wake.
  const heard = new Set<string>();
  const onHead = (jobId: string) => {
    if (heard.size >= HEARD_MAX) heard.clear();
    heard.add(jobId);
    kick();
  };
  let offHeads: (() => void) | undefined;
  const onMessage = (channel: string, message: string) => {
    if (channel === scheduler.keys.wakeChannel) {
      if (message.endsWith(ADMITTED) && heard.delete(message.slice(0, -ADMITTED.length))) return;
      kick();
    } else if (channel === scheduler.keys.cancelChannel) leases.cancelled(message);
    else if (channel === o.permits?.channel) grantPermits();
  };

  // Nothing new starts (its slots stop counting) → running attempts finish or are handed back →
  // attempts still waiting in BullMQ are handed back → the cancel relay and renewal end → directory
  // entry → BullMQ's queue.
  async function stopNow(graceMs: number): Promise<void> {
    halt.abort();
    // Leases of the attempts still running stay renewed until they are settled or handed back.
    housekeeping.close();
    health?.stop();
    // Its slots stop counting as capacity at once (it starts nothing new), while the pass in flight ends.
    await Promise.all([within(dispatcher.inFlight(), 1_000), within(housekeeping.retireSlots(), 1_000)]);
    await runner.close(graceMs);
    // The outputs its attempts answered with are written before the process goes (else the sweep does).
    await o.outputSweep?.close(2_000);
    await within(attempts.handBackWaiting(), 2_000);
    // The cancel relay stays until here: cancels during the grace period abort at once.
    o.subscriber.off("message", onMessage);
    offHeads?.();
    leases.close();
    await within(housekeeping.withdraw(), 1_000);
    await within(attempts.close(), 2_000);
    breakers?.shutdown();
    logger.info("worker stopped");
  }

  return {
    held: ledger.held,
    kick,

    async start() {
      // Everything that settles, renews or cancels attempts is in place before BullMQ hands any.
      if (health) {
        await health.checkAll();
        health.onRecovered(() => kick());
        health.start(o.publishIntervalMs);
      }
      breakers?.onChange((_id, state) => {
        if (state !== "open") kick();
        housekeeping.publish().catch(() => undefined);
      });
      o.subscriber.on("message", onMessage);
      offHeads = o.heads?.subscribe(onHead);
      await o.subscriber.subscribe(
        scheduler.keys.wakeChannel,
        scheduler.keys.cancelChannel,
        ...(o.permits ? [o.permits.channel] : []),
      );
      leases.start();
      await housekeeping.start();
      await runner.start();
      o.outputSweep?.start();
      kick();
      logger.info({ concurrency: o.concurrency, backends: o.registry.list().length }, "worker started");
    },

    stop(graceMs) {
      stopped ??= stopNow(graceMs);
      return stopped;
    },
  };
}
