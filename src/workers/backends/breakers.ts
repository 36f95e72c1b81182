// One opossum circuit breaker per backend in this process: a rolling window, a volume threshold,
// one half-open probe at a time. Only failures of the backend count (5xx, resets, refused
// connections, timeouts); bad requests (4xx), busy answers and our own aborts never trip it.
import CircuitBreaker from "opossum";
import type { Logger } from "pino";
import { BreakerOpenError, tripsBreaker } from "../failure-policy.js";

export type BreakerState = "closed" | "open" | "halfOpen";

export interface BreakerOptions {
  /** Rolling statistics window (ms). */
  readonly windowMs: number;
  /** Calls in the window before the error rate can open the breaker. */
  readonly volumeThreshold: number;
  /** Error rate (percent) above which it opens. */
  readonly errorPercent: number;
  /** Time open before a half-open probe is let through (ms). */
  readonly resetMs: number;
}

export interface Breakers {
  /** Runs `call` through the backend's breaker; rejects with BreakerOpenError while it is open. */
  run<T>(backendId: string, call: () => Promise<T>): Promise<T>;
  /** Whether the dispatcher may send this process more work for the backend. */
  admits(backendId: string): boolean;
  states(): Record<string, BreakerState>;
  /** Called on every state change (the worker kicks its dispatcher when one closes). */
  onChange(listener: (backendId: string, state: BreakerState) => void): void;
  shutdown(): void;
}

type Call = () => Promise<unknown>;

export function createBreakers(ids: readonly string[], opts: BreakerOptions, logger: Logger): Breakers {
  const listeners: ((id: string, s: BreakerState) => void)[] = [];
  const probing = new Set<string>();
  const breakers = new Map<string, CircuitBreaker<[Call], unknown>>();
  for (const id of ids) {
    const b = new CircuitBreaker<[Call], unknown>((call: Call) => call(), {
      timeout: false, // the worker owns execution timeouts (per model) and aborts the call itself
      rollingCountTimeout: opts.windowMs,
      rollingCountBuckets: 10,
      volumeThreshold: opts.volumeThreshold,
      errorThresholdPercentage: opts.errorPercent,
      resetTimeout: opts.resetMs,
      errorFilter: (err: unknown) => !tripsBreaker(err),
    });
    const emit = (state: BreakerState) => {
      if (state !== "halfOpen") probing.delete(id);
      logger[state === "open" ? "warn" : "info"]({ backend: id, breaker: state }, `circuit breaker ${state}`);
      for (const l of listeners) l(id, state);
    };
    b.on("open", () => emit("open"));
    b.on("halfOpen", () => emit("halfOpen"));
    b.on("close", () => emit("closed"));
    breakers.set(id, b);
  }

  const stateOf = (id: string): BreakerState => {
    const b = breakers.get(id);
    if (!b || b.closed) return "closed";
    return b.halfOpen ? "halfOpen" : "open";
  };

  return {
    async run<T>(id: string, call: () => Promise<T>): Promise<T> {
      const b = breakers.get(id);
      if (!b) return call();
      const half = b.halfOpen;
      if (half) probing.add(id);
      try {
        return (await b.fire(call)) as T;
      } catch (err) {
        if ((err as { code?: string }).code === "EOPENBREAKER") throw new BreakerOpenError(id);
        throw err;
      } finally {
        if (half) probing.delete(id);
      }
    },
    admits(id) {
      const s = stateOf(id);
      return s === "closed" || (s === "halfOpen" && !probing.has(id));
    },
    states() {
      return Object.fromEntries([...breakers.keys()].map((id) => [id, stateOf(id)]));
    },
    onChange(listener) {
      listeners.push(listener);
    },
    shutdown() {
      for (const b of breakers.values()) b.shutdown();
    },
  };
}
