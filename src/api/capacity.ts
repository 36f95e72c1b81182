// What the API knows of backend capacity and service times, read from Redis with a short cache so
// the submit path does not pay a round trip for them.
import type { BackendDirectory, BackendState } from "../queues/backend-directory.js";
import type { JobStore } from "../queues/job-store.js";
import type { Clock } from "../core/time.js";

export interface CapacityView {
  /** Backends reported by live workers. */
  backends(): Promise<readonly BackendState[]>;
  /** Total capacity of healthy backends that serve `family/model` (and match `constraint`). */
  capacity(familyModel: string, constraint?: string): Promise<number>;
  /** Service time estimate (ms) of a route. */
  serviceMs(route: string): Promise<number>;
  /** Mean of the measured service times of all routes (the default until one is measured). */
  averageServiceMs(): Promise<number>;
  /** Whether some reported backend (healthy or not) serves the model under `constraint`. */
  hasBackend(familyModel: string, constraint: string): Promise<boolean>;
}

export function servesRoute(
  b: Pick<BackendState, "models" | "engine" | "id">,
  familyModel: string,
  constraint?: string,
) {
  if (constraint && constraint !== b.engine && constraint !== b.id) return false;
  return b.models.includes("*") || b.models.includes(familyModel);
}

export function createCapacityView(opts: {
  directory: BackendDirectory;
  store: JobStore;
  clock: Clock;
  cacheMs: number;
  staleMs: number;
  defaultServiceMs: number;
}): CapacityView {
  let backends: { at: number; value: Promise<readonly BackendState[]> } | undefined;
  let times: { at: number; value: Promise<Map<string, number>> } | undefined;

  const getBackends = () => {
    const now = opts.clock();
    if (!backends || now - backends.at > opts.cacheMs) {
      const value = opts.directory.read(opts.staleMs);
      value.catch(() => {
        backends = undefined;
      });
      backends = { at: now, value };
    }
    return backends.value;
  };
  const getTimes = () => {
    const now = opts.clock();
    if (!times || now - times.at > opts.cacheMs) {
      const value = opts.store.serviceTimes();
      value.catch(() => {
        times = undefined;
      });
      times = { at: now, value };
    }
    return times.value;
  };

  return {
    backends: getBackends,
    async capacity(familyModel, constraint) {
      let sum = 0;
      for (const b of await getBackends()) {
        const breakerOpen =
          Object.values(b.breakers).length > 0 && Object.values(b.breakers).every((s) => s === "open");
        if (b.healthy && !breakerOpen && servesRoute(b, familyModel, constraint)) sum += b.capacity;
      }
      return sum;
    },
    async serviceMs(route) {
      const t = await getTimes();
      return t.get(route) ?? t.get(route.split("@")[0]!) ?? opts.defaultServiceMs;
    },
    async averageServiceMs() {
      const t = [...(await getTimes()).values()];
      return t.length === 0 ? opts.defaultServiceMs : Math.round(t.reduce((a, b) => a + b, 0) / t.length);
    },
    async hasBackend(familyModel, constraint) {
      return (await getBackends()).some((b) => servesRoute(b, familyModel, constraint));
    },
  };
}
