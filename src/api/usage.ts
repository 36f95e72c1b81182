// GET /usage (API.md §3 "usage"; docs/decisions.md "Billing"): a customer's finished jobs, GPU-seconds
// and cost in a window, by completion time (UTC). Whole hours come from the usage counts in Redis;
// the part-hours at a window's edges from the ledger itself, so any window is exact.
import type { LedgerEntry } from "../core/billing.js";
import type { Ledger } from "../core/ports.js";
import type { UsageBucket, UsageStore } from "../queues/usage-store.js";
import { HOUR_MS, utcDay } from "../core/time.js";

/** How `GET /usage` may group a report (`group_by`). */
export const USAGE_GROUPINGS = ["model", "day"] as const;
export type UsageGrouping = (typeof USAGE_GROUPINGS)[number];

interface Sums {
  jobs: number;
  gpuMs: number;
  cost: number;
}

export interface UsageReport {
  readonly total: Sums;
  /** Per group key (`family/model` or `YYYY-MM-DD`), in key order; empty without a grouping. */
  readonly groups: readonly (Sums & { readonly key: string })[];
}

function groupKey(by: UsageGrouping, model: string, atMs: number): string {
  return by === "model" ? model : utcDay(atMs);
}

/** The usage of `customer` in [fromMs, toMs), grouped `by` when given. */
export async function usageOf(
  deps: { usage: UsageStore; ledger: Ledger },
  customer: string,
  fromMs: number,
  toMs: number,
  by: UsageGrouping | undefined,
): Promise<UsageReport> {
  const total: Sums = { jobs: 0, gpuMs: 0, cost: 0 };
  const groups = new Map<string, Sums>();
  const add = (model: string, atMs: number, jobs: number, gpuMs: number, cost: number) => {
    total.jobs += jobs;
    total.gpuMs += gpuMs;
    total.cost += cost;
    if (by === undefined) return;
    const key = groupKey(by, model, atMs);
    const g = groups.get(key) ?? { jobs: 0, gpuMs: 0, cost: 0 };
    g.jobs += jobs;
    g.gpuMs += gpuMs;
    g.cost += cost;
    groups.set(key, g);
  };
  const firstHour = Math.ceil(fromMs / HOUR_MS) * HOUR_MS;
  const lastHour = Math.floor(toMs / HOUR_MS) * HOUR_MS;
  if (firstHour < lastHour) {
    const buckets: UsageBucket[] = await deps.usage.buckets(customer, firstHour, lastHour);
    for (const b of buckets) {
      if (b.hourMs >= firstHour && b.hourMs < lastHour)
        add(b.model, b.hourMs, b.jobs, b.gpuMs, b.costMicroUsd);
    }
  }
  // the part-hours at the edges (the whole window when it lies within one hour)
  const edges: [number, number][] =
    firstHour < lastHour
      ? [
          [fromMs, firstHour],
          [lastHour, toMs],
        ]
      : [[fromMs, toMs]];
  for (const [from, to] of edges) {
    if (from >= to) continue;
    for await (const e of deps.ledger.read(from, to, customer)) addEntry(e);
  }
  function addEntry(e: LedgerEntry): void {
    add(e.model, e.completed_at, 1, e.gpu_ms, e.cost_micro_usd);
  }
  return {
    total,
    groups: [...groups.entries()]
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
      .map(([key, s]) => ({ key, ...s })),
  };
}
