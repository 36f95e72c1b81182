// The lease keeper of one worker process: renews the leases of its attempts (running here, or handed
// to BullMQ and not yet begun), relays cancels to the attempts they stop, and remembers for a minute
// which attempts must never call their backend.
import { attemptId } from "../core/attempt-id.js";
import type { Logger } from "pino";
import type { Clock } from "../core/time.js";
import type { Attempt, Scheduler } from "../queues/scheduler.js";
import type { SlotLedger } from "./slot-ledger.js";
import { every, type Periodic } from "./timers.js";

/** How long a cancel or a lost attempt is remembered (an attempt waits in BullMQ far less). */
const DOOMED_FOR_MS = 60_000;

export interface LeaseKeeperDeps {
  readonly scheduler: Pick<Scheduler, "renew">;
  readonly ledger: Pick<SlotLedger, "held" | "waiting" | "drop">;
  readonly clock: Clock;
  readonly logger: Logger;
  /** The lease period: renewal runs every third of it (between 100 ms and 1 s). */
  readonly lockMs: number;
}

export interface LeaseKeeper {
  /** Starts renewing periodically. */
  start(): void;
  /**
   * One renewal pass over every attempt running here and every one handed within the last lock
   * period. An attempt the scheduler reports over (its job was cancelled, finished elsewhere, or
   * reaped after its lease expired) is aborted here and never begun should BullMQ hand it over later.
   */
  renew(): Promise<void>;
  /** The cancel channel announced job `id`: abort it if it runs here, never begin it. */
  cancelled(id: string): void;
  /** Remembers that `key` — a job id, or `id|token` of one attempt — must not call its backend. */
  readonly doom: (key: string) => void;
  /** Whether attempt `a` must not call its backend (its job was cancelled, or the attempt is known lost). */
  readonly isDoomed: (a: Pick<Attempt, "id" | "token">) => boolean;
  /** Stops renewing: leases not settled by then run out. */
  close(): void;
}

export function createLeaseKeeper(deps: LeaseKeeperDeps): LeaseKeeper {
  const { ledger, clock } = deps;
  const held = ledger.held;
  // Job ids cancelled on the channel (a cancelled job never runs again), and attempts ("id|token")
  // that renewal found no longer current (their job may run again, under another token).
  const doomed = new Map<string, number>();
  let timer: Periodic | undefined;

  const doom = (key: string) => {
    const now = clock();
    doomed.set(key, now);
    for (const [k, at] of doomed) if (now - at > DOOMED_FOR_MS) doomed.delete(k);
  };

  async function renew(): Promise<void> {
    const entries = [...held.entries()].map(([id, h]) => ({ id, token: h.token, backend: h.backend }));
    // Handed attempts are renewed for one lock period, which covers the wait in BullMQ; not longer,
    // because the processor that took one may be in another process, and if that process dies its
    // lease must run out.
    for (const h of ledger.waiting(deps.lockMs)) entries.push(h);
    if (entries.length === 0) return;
    const tokens = new Map(entries.map((e) => [e.id, e.token]));
    for (const id of await deps.scheduler.renew(entries)) {
      ledger.drop(id);
      doom(attemptId({ id, token: tokens.get(id) ?? "" }));
      held.get(id)?.abort("cancelled");
    }
  }

  return {
    start() {
      const ms = Math.max(100, Math.min(1_000, Math.floor(deps.lockMs / 3)));
      timer = every(ms, renew, deps.logger, "lease renewal");
    },
    renew,
    cancelled(id) {
      doom(id);
      held.get(id)?.abort("cancelled");
    },
    doom,
    isDoomed: (a) => doomed.has(a.id) || doomed.has(attemptId(a)),
    close() {
      timer?.stop();
    },
  };
}
