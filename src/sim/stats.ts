// Counters of the simulated backend (GET /sim/stats), including a bounded per-request-id call count.
import { createLru } from "../core/lru.js";

/** A snapshot of the simulator's counters (the body of `GET /sim/stats`). */
export interface SimStats {
  /** Generations in flight now, hung ones included. */
  active: number;
  /** Highest `active` since start or the last reset. */
  peak_active: number;
  /** Every infer / generate_stream call, whatever its outcome. */
  calls: number;
  /** Calls answered with media. */
  completed: number;
  /** Calls answered 500 (injected failures and render errors). */
  failed: number;
  /** Calls answered 503 at admission (capacity, `down`, `[sim:503]`). */
  rejected_busy: number;
  /** Calls answered 400. */
  rejected_bad_request: number;
  /** Generations ended because the client went away (or the server closed) before the answer. */
  aborted: number;
  /** Calls that started hanging (they also count as `aborted` once the client leaves). */
  hung: number;
  /** Calls per request id, for the most recent {@link CALLS_BY_ID_LIMIT} ids. */
  calls_by_id: Record<string, number>;
}

/** How many distinct request ids `calls_by_id` remembers (the least recently called are dropped). */
export const CALLS_BY_ID_LIMIT = 10_000;

type Counter = Exclude<keyof SimStats, "active" | "peak_active" | "calls" | "calls_by_id">;

/** Mutable counters behind {@link SimStats}; one per server. */
export interface StatsRecorder {
  /** Counts a call (and its id, when known). */
  call(id: string | undefined): void;
  /** Adds one to a counter. */
  count(counter: Counter): void;
  /** A generation took a capacity slot. */
  enter(): void;
  /** A generation gave its slot back. */
  leave(): void;
  /** In-flight generations now. */
  active(): number;
  /** A copy of every counter. */
  snapshot(): SimStats;
  /** Zeroes the counters; `active` is live state and stays, `peak_active` restarts from it. */
  reset(): void;
}

/** Fresh counters. */
export function createStatsRecorder(limit: number = CALLS_BY_ID_LIMIT): StatsRecorder {
  let active = 0;
  let peak = 0;
  let calls = 0;
  const counters: Record<Counter, number> = {
    completed: 0,
    failed: 0,
    rejected_busy: 0,
    rejected_bad_request: 0,
    aborted: 0,
    hung: 0,
  };
  // Recency = the last call: the id called least recently is forgotten first.
  const byId = createLru<string, number>(limit);
  return {
    call(id) {
      calls++;
      if (id === undefined) return;
      byId.set(id, (byId.get(id) ?? 0) + 1);
    },
    count(counter) {
      counters[counter]++;
    },
    enter() {
      active++;
      if (active > peak) peak = active;
    },
    leave() {
      active--;
    },
    active: () => active,
    snapshot: () => ({
      active,
      peak_active: peak,
      calls,
      ...counters,
      calls_by_id: Object.fromEntries(byId.entries()),
    }),
    reset() {
      calls = 0;
      peak = active;
      for (const k of Object.keys(counters) as Counter[]) counters[k] = 0;
      byId.clear();
    },
  };
}
