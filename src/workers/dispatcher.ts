// The dispatcher of one worker process: starts the scheduler's next attempts, in its order, for as
// many slots as this process has free, and hands them to BullMQ; one pass at a time.
import type { Logger } from "pino";
import type { Attempt, BackendView, Scheduler } from "../queues/scheduler.js";
import type { AttemptQueue } from "./attempt-queue.js";
import type { SlotLedger } from "./slot-ledger.js";

export interface DispatcherDeps {
  readonly scheduler: Pick<Scheduler, "dispatch">;
  readonly ledger: Pick<SlotLedger, "reserveFree" | "release">;
  readonly attempts: Pick<AttemptQueue, "hand" | "refusing">;
  /** The backends as the scheduler sees them (a new array only when they changed). */
  readonly views: () => readonly BackendView[];
  /** Engine to run each `family/model` on when several could. */
  readonly prefer: Readonly<Record<string, string>>;
  /**
   * Runs a started sync attempt in this process at once, without BullMQ (docs/decisions.md "Sync
   * attempts skip BullMQ"); false when it cannot (the attempt then goes to BullMQ).
   */
  readonly runHere?: (a: Attempt) => boolean;
  /** Aborted when the worker begins to stop: no pass starts after that. */
  readonly stopping: AbortSignal;
  readonly logger: Logger;
}

export interface Dispatcher {
  /** Runs a dispatch pass now, or one more right after the pass in flight. */
  readonly kick: () => void;
  /** The pass in flight, if any (it never rejects). */
  inFlight(): Promise<void> | undefined;
}

export function createDispatcher(deps: DispatcherDeps): Dispatcher {
  const { ledger, attempts, stopping } = deps;
  let dispatching: Promise<void> | undefined;
  let again = false;

  async function pass(): Promise<void> {
    do {
      again = false;
      if (stopping.aborted || attempts.refusing()) return;
      const free = ledger.reserveFree();
      if (free === 0) return;
      let started: Attempt[];
      try {
        started = await deps.scheduler.dispatch(free, deps.views(), deps.prefer);
      } finally {
        ledger.release(free);
      }
      if (started.length === 0) return;
      // A sync job's caller is waiting: its attempt runs here, in the slot reserved for it, and skips
      // the queue (an add, a fetch and a completion in Redis); the others go through BullMQ.
      const runHere = deps.runHere;
      const queued = runHere ? started.filter((a) => a.sync !== true || !runHere(a)) : started;
      if (queued.length > 0) await attempts.hand(queued);
      // Every free slot got an attempt: there may be more to start.
      if (started.length === free) again = true;
    } while (again);
  }

  function kick(): void {
    if (stopping.aborted) return;
    if (dispatching) {
      again = true;
      return;
    }
    dispatching = pass()
      .catch((err: unknown) => deps.logger.warn({ err }, "dispatch failed"))
      .finally(() => {
        dispatching = undefined;
        if (again) kick();
      });
  }

  return { kick, inFlight: () => dispatching };
}
