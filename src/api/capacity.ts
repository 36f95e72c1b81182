// What the API knows of the capacity that can run jobs now and of what jobs cost, read from Redis
// into a snapshot that is refreshed in the background (stale-while-revalidate), so the submit path
// never waits for it after the first request: the backends live workers report, the slots live
// workers announce, the slots busy now (leases), each model's measured ms per work unit and the jobs
// at the head of the order (docs/decisions.md "Queue, positions and ETAs").
import type { BackendDirectory, BackendState } from "../queues/backend-directory.js";
import type { JobStore, QueuedWork } from "../queues/job-store.js";
import type { WorkerAnnouncement, WorkerRoster, WorkerSlots } from "../queues/worker-slots.js";
import type { Clock } from "../core/time.js";
import { estimateCostMs, type CostModel } from "../core/cost.js";
import type { QueueBasis } from "../core/eta.js";
import { formatRoute } from "../core/model-route.js";
import { servesModel } from "../config/backends.js";

/**
 * How long the API serves a capacity snapshot before it refreshes it in the background: the
 * admission of a sync request can be this stale.
 */
export const CAPACITY_CACHE_MS = 1_000;

/** Jobs at the head of the order whose mean estimated cost is the length of a wave. */
export const HEAD_SAMPLE = 32;

export interface RouteInfo {
  /**
   * Slots that can run the route's jobs now: those of the healthy backends (breaker not open
   * everywhere) serving it, no more than the slots of the live workers that serve those backends
   * (the backends' alone while no worker announces its slots).
   */
  readonly capacity: number;
  /** Of those, the slots busy now (leases held on those backends), at most `capacity`. */
  readonly running: number;
  /**
   * What the sync tier's check counts leases on at admission (admit.lua): the healthy backends
   * serving the route and their slots, and the live workers serving them — their slots and every
   * backend they serve (their slots are shared by all of those); no workers while none announces.
   */
  readonly sync: {
    readonly slots: number;
    readonly backends: readonly string[];
    readonly workers?: { readonly slots: number; readonly backends: readonly string[] };
  };
  /** Some reported backend (healthy or not) serves the model under the route's constraint. */
  readonly served: boolean;
  /**
   * Some live worker reports backends that could serve the route (those of its pool: pooled-capacity.ts);
   * while none does (a deploy), jobs are accepted and wait. Undefined: any backend reported at all.
   */
  readonly reported?: boolean;
}

export interface CapacitySnapshot {
  /** Backends reported by live workers. */
  readonly backends: readonly BackendState[];
  /** Workers whose slot announcement has not expired. */
  readonly workers: readonly WorkerAnnouncement[];
  /** Slots that can take work now, fleet-wide: as {@link RouteInfo.capacity}, over every backend. */
  readonly usableCapacity: number;
  /** Of those, the slots busy now. */
  readonly running: number;
  /**
   * The fair share's unit C for a job of `familyModel` (its pool's): the slots of every backend
   * known, healthy or not (it changes with the fleet, not with its health), no more than the live
   * worker slots serving them — virtual time then runs at the pace the fleet can really work.
   */
  fleetSlots(familyModel: string): number;
  route(familyModel: string, constraint?: string): RouteInfo;
  /** Estimated GPU ms of a job of `family/model` of `work` units (core/cost.ts). */
  costMs(familyModel: string, work: number): number;
  /** Mean estimated cost (ms) of the jobs at the head of the order; undefined while none is queued. */
  readonly headCostMs: number | undefined;
  /** Mean ms per work unit of the measured models (the image prior until one is measured). */
  readonly averageUnitMs: number;
  /** The measured ms per work unit of each `family/model` that has one. */
  readonly measuredUnitMs: ReadonlyMap<string, number>;
  /**
   * What the wait of a job of the route costing `costMs` is computed from (core/eta.ts): the route's
   * capacity and busy slots, and waves as long as the mean cost of the jobs at the head of the
   * order (the job's own cost while none is queued).
   */
  basis(familyModel: string, constraint: string | undefined, costMs: number): QueueBasis;
}

export interface CapacityView {
  snapshot(): Promise<CapacitySnapshot>;
  /** The snapshot without waiting, when one is held and its last refresh did not fail. */
  current(): CapacitySnapshot | undefined;
  /**
   * A snapshot no older than the cache time: the held one, or a new read (the sync tier's check: a
   * snapshot served after a quiet spell may describe a queue long gone).
   */
  fresh(): Promise<CapacitySnapshot>;
}

/** Healthy, and not shut off by the breaker of every worker process that reported one. */
function usable(b: BackendState): boolean {
  const states = Object.values(b.breakers);
  return b.healthy && !(states.length > 0 && states.every((s) => s === "open"));
}

interface SnapshotInput {
  readonly backends: readonly BackendState[];
  readonly roster: WorkerRoster;
  readonly leases: ReadonlyMap<string, number>;
  readonly rates: ReadonlyMap<string, number>;
  readonly head: readonly QueuedWork[];
  readonly cost: Pick<CostModel, "msPerUnit">;
}

export function buildSnapshot(input: SnapshotInput): CapacitySnapshot {
  const { backends, roster, leases, rates, cost } = input;
  /**
   * The slots of the backends `ids` and the live workers serving them (none while no worker
   * announces its slots), as the capacity that can run work now (theirs, no more than those
   * workers' slots) and the figures of the sync tier's check ({@link RouteInfo.sync}).
   */
  const slotsOf = (ids: readonly BackendState[]) => {
    const backendSlots = ids.reduce((sum, b) => sum + b.capacity, 0);
    const busy = ids.reduce((sum, b) => sum + (leases.get(b.id) ?? 0), 0);
    const own = { slots: backendSlots, backends: ids.map((b) => b.id) };
    if (!roster.announced) {
      return { capacity: backendSlots, running: Math.min(backendSlots, busy), sync: own };
    }
    const served = new Set(own.backends);
    const workers = roster.live.filter((w) => w.backends.some((id) => served.has(id)));
    const workerSlots = workers.reduce((sum, w) => sum + w.slots, 0);
    const capacity = Math.min(backendSlots, workerSlots);
    const sync: RouteInfo["sync"] = {
      ...own,
      workers: { slots: workerSlots, backends: [...new Set(workers.flatMap((w) => w.backends))] },
    };
    return { capacity, running: Math.min(capacity, busy), sync };
  };
  const costMs = (familyModel: string, work: number) =>
    estimateCostMs(work, cost.msPerUnit(familyModel, rates.get(familyModel)));
  const headCosts = input.head.map((j) => costMs(j.familyModel, j.work));
  const headCostMs =
    headCosts.length === 0 ? undefined : Math.round(headCosts.reduce((a, b) => a + b, 0) / headCosts.length);
  const measured = [...rates.values()].filter((r) => Number.isFinite(r) && r > 0);
  const fleet = slotsOf(backends.filter(usable));
  const allSlots = slotsOf(backends).capacity;
  const memo = new Map<string, RouteInfo>();
  const route = (familyModel: string, constraint?: string): RouteInfo => {
    const key = formatRoute(familyModel, constraint);
    let info = memo.get(key);
    if (!info) {
      const serving = backends.filter((b) => servesModel(b, familyModel, constraint));
      const { capacity, running, sync } = slotsOf(serving.filter(usable));
      info = { capacity, running, sync, served: serving.length > 0 };
      memo.set(key, info);
    }
    return info;
  };
  return {
    backends,
    workers: roster.live,
    usableCapacity: fleet.capacity,
    running: fleet.running,
    fleetSlots: () => allSlots,
    route,
    costMs,
    headCostMs,
    measuredUnitMs: rates,
    averageUnitMs:
      measured.length === 0
        ? cost.msPerUnit("", undefined)
        : measured.reduce((a, b) => a + b, 0) / measured.length,
    basis(familyModel, constraint, ownMs) {
      const r = route(familyModel, constraint);
      return { capacity: r.capacity, running: r.running, waveMs: headCostMs ?? ownMs };
    },
  };
}

export function createCapacityView(opts: {
  directory: Pick<BackendDirectory, "read">;
  store: Pick<JobStore, "workRates" | "leases" | "head">;
  workerSlots: Pick<WorkerSlots, "read">;
  cost: Pick<CostModel, "msPerUnit">;
  clock: Clock;
  cacheMs: number;
  staleMs: number;
}): CapacityView {
  let current: { at: number; value: CapacitySnapshot } | undefined;
  let loading: Promise<CapacitySnapshot> | undefined;
  let failed = false;

  const load = () => {
    loading ??= Promise.all([
      opts.directory.read(opts.staleMs),
      opts.workerSlots.read(),
      opts.store.leases(),
      opts.store.workRates(),
      opts.store.head(HEAD_SAMPLE),
    ])
      .then(([backends, roster, leases, rates, head]) => {
        const value = buildSnapshot({ backends, roster, leases, rates, head, cost: opts.cost });
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
    fresh() {
      const young = current !== undefined && !failed && opts.clock() - current.at <= opts.cacheMs;
      return young ? Promise.resolve(current!.value) : load();
    },
  };
}
