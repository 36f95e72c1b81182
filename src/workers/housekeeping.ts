// Housekeeping of one worker process: its periodic tasks besides lease renewal — reaping expired
// leases and expiring jobs past their ttl, the dispatch tick (the safety net under wake-ups), and
// publishing its backends' state and announcing its slots for the API.
import type { Logger } from "pino";
import type { WorkerRecorder } from "../core/metrics.js";
import type { BackendDirectory } from "../queues/backend-directory.js";
import type { Scheduler } from "../queues/scheduler.js";
import type { WorkerSlots } from "../queues/worker-slots.js";
import type { Breakers } from "./backends/breakers.js";
import type { Registry } from "./backends/registry.js";
import { every, type Periodic } from "./timers.js";

export interface HousekeepingDeps {
  readonly workerId: string;
  readonly scheduler: Pick<Scheduler, "reap" | "expire">;
  readonly directory: Pick<BackendDirectory, "publish" | "forget">;
  /** Where this worker announces its slots (they count as capacity until the announcement expires). */
  readonly workerSlots: Pick<WorkerSlots, "announce" | "withdraw">;
  /** This process's slots (WORKER_CONCURRENCY). */
  readonly concurrency: number;
  /** LOCK_MS: an announcement lives this long; it is renewed at least three times meanwhile. */
  readonly lockMs: number;
  readonly registry: Pick<Registry, "list">;
  readonly breakers?: Pick<Breakers, "states"> | undefined;
  /** Asks the dispatcher for a pass. */
  readonly kick: () => void;
  readonly logger: Logger;
  /** Interval of reaping and expiry. */
  readonly stalledIntervalMs: number;
  /** Interval of the dispatch tick (default 250 ms). */
  readonly dispatchIntervalMs?: number | undefined;
  readonly publishIntervalMs: number;
  /** Counts the jobs the reaper puts back in the queue. */
  readonly metrics: Pick<WorkerRecorder, "reaped">;
}

export interface Housekeeping {
  /** Starts the periodic tasks and publishes once (a failure is logged). */
  start(): Promise<void>;
  /** Publishes this worker's backends and breaker states to the directory, and announces its slots, now. */
  publish(): Promise<void>;
  /** Its slots stop counting now (first thing at stop: it takes nothing new); no announcement after. */
  retireSlots(): Promise<void>;
  /** Removes this worker's entry from the directory. */
  withdraw(): Promise<void>;
  /** Stops the periodic tasks (runs in flight go on). */
  close(): void;
}

export function createHousekeeping(deps: HousekeepingDeps): Housekeeping {
  const { scheduler, logger: log } = deps;
  const timers: Periodic[] = [];
  let retired = false;

  async function reapAndExpire(): Promise<void> {
    const reaped = await scheduler.reap();
    deps.metrics.reaped(reaped);
    const expired = await scheduler.expire();
    if (reaped > 0) log.warn({ reaped }, "requeued jobs whose lease expired");
    if (reaped > 0 || expired > 0) deps.kick();
  }

  async function publish(): Promise<void> {
    const entries = deps.registry.list();
    const announce = retired
      ? undefined
      : deps.workerSlots.announce(
          deps.workerId,
          { slots: deps.concurrency, backends: entries.map((e) => e.config.id) },
          deps.lockMs,
        );
    await Promise.all([
      deps.directory.publish(
        deps.workerId,
        entries.map((e) => ({
          id: e.config.id,
          engine: e.config.engine,
          capacity: e.config.capacity,
          models: e.config.models,
          streaming: e.config.streaming,
          healthy: e.healthy,
        })),
        deps.breakers?.states() ?? {},
      ),
      announce,
    ]);
  }

  // The announcement expires after LOCK_MS: renewed at least three times within it.
  const publishEveryMs = Math.max(50, Math.min(deps.publishIntervalMs, Math.floor(deps.lockMs / 3)));

  return {
    async start() {
      timers.push(
        every(deps.stalledIntervalMs, reapAndExpire, log, "lease reaping"),
        every(deps.dispatchIntervalMs ?? 250, async () => deps.kick(), log, "dispatch"),
        every(publishEveryMs, publish, log, "backend publication"),
      );
      await publish().catch((err: unknown) => log.warn({ err }, "backend publication failed"));
    },
    publish,
    retireSlots() {
      retired = true;
      return deps.workerSlots.withdraw(deps.workerId);
    },
    withdraw: () => deps.directory.forget(deps.workerId),
    close() {
      for (const t of timers) t.stop();
    },
  };
}
