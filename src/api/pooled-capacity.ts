// The capacity of several pools as one view (docs/decisions.md "Pools"): what a job of a model can
// use is its pool's (its backends, workers, leases and order); fleet-wide figures add the pools up.
import type { PoolRouter } from "../core/pools.js";
import type { CapacitySnapshot, CapacityView, RouteInfo } from "./capacity.js";

function combine(router: PoolRouter, snaps: ReadonlyMap<string, CapacitySnapshot>): CapacitySnapshot {
  const def = snaps.get(router.names[0]!)!;
  const of = (familyModel: string) => snaps.get(router.ofModel(familyModel)) ?? def;
  const all = [...snaps.values()];
  const measuredUnitMs = new Map<string, number>();
  for (const s of all) for (const [k, v] of s.measuredUnitMs) measuredUnitMs.set(k, v);
  const measured = [...measuredUnitMs.values()].filter((r) => Number.isFinite(r) && r > 0);
  const heads = all.map((s) => s.headCostMs).filter((h): h is number => h !== undefined);
  return {
    backends: all.flatMap((s) => s.backends),
    workers: all.flatMap((s) => s.workers),
    usableCapacity: all.reduce((n, s) => n + s.usableCapacity, 0),
    running: all.reduce((n, s) => n + s.running, 0),
    fleetSlots: (familyModel) => of(familyModel).fleetSlots(familyModel),
    route(familyModel, constraint): RouteInfo {
      const s = of(familyModel);
      return { ...s.route(familyModel, constraint), reported: s.backends.length > 0 };
    },
    costMs: (familyModel, work) => of(familyModel).costMs(familyModel, work),
    headCostMs: heads.length === 0 ? undefined : Math.round(heads.reduce((a, b) => a + b, 0) / heads.length),
    averageUnitMs:
      measured.length === 0 ? def.averageUnitMs : measured.reduce((a, b) => a + b, 0) / measured.length,
    measuredUnitMs,
    basis: (familyModel, constraint, costMs) => of(familyModel).basis(familyModel, constraint, costMs),
  };
}

/** The pools' capacity views (by pool name, the default's included) as one. */
export function createPooledCapacity(
  router: PoolRouter,
  views: ReadonlyMap<string, CapacityView>,
): CapacityView {
  const entries = [...views];
  // The pools' snapshots change about once a second: combine them once per change, not per request.
  let last: { parts: CapacitySnapshot[]; value: CapacitySnapshot } | undefined;
  const combined = (snaps: ReadonlyMap<string, CapacitySnapshot>): CapacitySnapshot => {
    const parts = [...snaps.values()];
    if (last && last.parts.length === parts.length && last.parts.every((p, i) => p === parts[i]))
      return last.value;
    last = { parts, value: combine(router, snaps) };
    return last.value;
  };
  return {
    current() {
      const snaps = new Map<string, CapacitySnapshot>();
      for (const [name, v] of entries) {
        const s = v.current();
        if (s === undefined) return undefined;
        snaps.set(name, s);
      }
      return combined(snaps);
    },
    async snapshot() {
      const snaps = await Promise.all(entries.map(async ([name, v]) => [name, await v.snapshot()] as const));
      return combined(new Map(snaps));
    },
    async fresh() {
      const snaps = await Promise.all(entries.map(async ([name, v]) => [name, await v.fresh()] as const));
      return combined(new Map(snaps));
    },
  };
}
