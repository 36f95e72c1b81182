// What the API knows of backend capacity and service times, read from Redis into a snapshot that
// is refreshed in the background (stale-while-revalidate), so the submit path never waits for it
// after the first request.
import type { BackendDirectory, BackendState } from "../queues/backend-directory.js";
import type { JobStore } from "../queues/job-store.js";
import type { Clock } from "../core/time.js";
import { formatRoute } from "../core/model-route.js";
import { servesModel } from "../config/backends.js";

export interface RouteInfo {
  /** Total capacity of healthy backends (breaker not open everywhere) that serve the route. */
  readonly capacity: number;
  /** Measured service time (ms) of the route, else of the model, else the default. */
  readonly serviceMs: number;
  /** Some reported backend (healthy or not) serves the model under the route's constraint. */
  readonly served: boolean;
}

export interface CapacitySnapshot {
  /** Backends reported by live workers. */
  readonly backends: readonly BackendState[];
  /** Total capacity of the backends that can take work now (healthy, breaker not open everywhere). */
  readonly usableCapacity: number;
  route(familyModel: string, constraint?: string): RouteInfo;
  /** Mean of the measured service times of all routes (the default until one is measured). */
  readonly averageServiceMs: number;
}

export interface CapacityView {
  snapshot(): Promise<CapacitySnapshot>;
  /** The snapshot without waiting, when one is held and its last refresh did not fail. */
  current(): CapacitySnapshot | undefined;
}

/** Healthy, and not shut off by the breaker of every worker process that reported one. */
function usable(b: BackendState): boolean {
  const states = Object.values(b.breakers);
  return b.healthy && !(states.length > 0 && states.every((s) => s === "open"));
}

function buildSnapshot(
  backends: readonly BackendState[],
  times: Map<string, number>,
  defaultServiceMs: number,
): CapacitySnapshot {
  const memo = new Map<string, RouteInfo>();
  const all = [...times.values()];
  return {
    backends,
    usableCapacity: backends.filter(usable).reduce((sum, b) => sum + b.capacity, 0),
    averageServiceMs:
      all.length === 0 ? defaultServiceMs : Math.round(all.reduce((a, b) => a + b, 0) / all.length),
    route(familyModel, constraint) {
      const key = formatRoute(familyModel, constraint);
      let info = memo.get(key);
      if (!info) {
        let capacity = 0;
        let served = false;
        for (const b of backends) {
          if (!servesModel(b, familyModel, constraint)) continue;
          served = true;
          if (usable(b)) capacity += b.capacity;
        }
        info = { capacity, served, serviceMs: times.get(key) ?? times.get(familyModel) ?? defaultServiceMs };
        memo.set(key, info);
      }
      return info;
    },
  };
}

export function createCapacityView(opts: {
  directory: BackendDirectory;
  store: JobStore;
  clock: Clock;
  cacheMs: number;
  staleMs: number;
  defaultServiceMs: number;
}): CapacityView {
  let current: { at: number; value: CapacitySnapshot } | undefined;
  let loading: Promise<CapacitySnapshot> | undefined;
  let failed = false;

  const load = () => {
    loading ??= Promise.all([opts.directory.read(opts.staleMs), opts.store.serviceTimes()])
      .then(([backends, times]) => {
        const value = buildSnapshot(backends, times, opts.defaultServiceMs);
        current = { at: opts.clock(), value };
        failed = false;
        return value;
      })
      .catch((err: unknown) => {
        failed = true;
        throw err;
      })
      .finally(() => {
        loading = undefined;
      });
    return loading;
  };

  // After a failed refresh (Redis unreachable) nothing is held: callers wait for a fresh read and see
  // its error, rather than decisions made on data that can no longer be checked.
  const held = (): CapacitySnapshot | undefined => {
    if (!current || failed) return undefined;
    // Serve the last snapshot now and refresh it for the next requests.
    if (opts.clock() - current.at > opts.cacheMs) load().catch(() => undefined);
    return current.value;
  };

  return {
    current: held,
    snapshot() {
      const value = held();
      return value === undefined ? load() : Promise.resolve(value);
    },
  };
}
