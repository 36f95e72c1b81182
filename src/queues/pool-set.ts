// The API's view of several pools as one (docs/decisions.md "Pools"): a scheduler, a job store and an
// idempotency store that send each call about a job to the pool its id names (core/pools.ts), and
// add up the pool-wide figures. Built only when POOLS_FILE names pools: a single-pool deployment
// uses the pool's own objects, unchanged.
import { PRIORITIES, type Priority } from "../core/job.js";
import type { PoolRouter } from "../core/pools.js";
import type { IdempotencyStore } from "./idempotency-store.js";
import type { JobStore, QueuedWork, TenantShare } from "./job-store.js";
import type { Scheduler } from "./scheduler.js";

/** One pool's objects, by the pool's name. */
export type ByPool<T> = ReadonlyMap<string, T>;

/** The object of `pool`; the default pool's for a name not in the map (never happens by construction). */
function pick<T>(map: ByPool<T>, pool: string, fallback: string): T {
  const v = map.get(pool) ?? map.get(fallback);
  if (v === undefined) throw new Error(`no pool ${pool}`);
  return v;
}

const sum = (xs: readonly number[]) => xs.reduce((a, b) => a + b, 0);

export function createPooledScheduler(router: PoolRouter, pools: ByPool<Scheduler>): Scheduler {
  const def = router.names[0]!;
  const of = (id: string) => pick(pools, router.ofJob(id), def);
  const all = [...pools.values()];
  return {
    keys: pick(pools, def, def).keys,
    admit: (input) => of(input.id).admit(input),
    resolveAdmission: (id, customer) => of(id).resolveAdmission(id, customer),
    async resolvePending(id) {
      if (id !== undefined) return of(id).resolvePending(id);
      return sum(await Promise.all(all.map((s) => s.resolvePending())));
    },
    // A worker runs one pool and calls that pool's scheduler; these go by the job's id all the same.
    dispatch: (free, backends, prefer) => pick(pools, def, def).dispatch(free, backends, prefer),
    finish: (id, token, backend, outcome, payload, next, syncOutput, withRecord) =>
      of(id).finish(id, token, backend, outcome, payload, next, syncOutput, withRecord),
    cancel: (id, customer) => of(id).cancel(id, customer),
    async renew(held) {
      const groups = new Map<string, typeof held>();
      for (const h of held) {
        const p = router.ofJob(h.id);
        groups.set(p, [...(groups.get(p) ?? []), h]);
      }
      const res = await Promise.all([...groups].map(([p, hs]) => pick(pools, p, def).renew(hs)));
      return res.flat();
    },
    reap: async () => sum(await Promise.all(all.map((s) => s.reap()))),
    expire: async () => sum(await Promise.all(all.map((s) => s.expire()))),
    progress: (id, token, progress, step, steps, preview) =>
      of(id).progress(id, token, progress, step, steps, preview),
  };
}

export function createPooledJobStore(router: PoolRouter, pools: ByPool<JobStore>): JobStore {
  const def = router.names[0]!;
  const of = (id: string) => pick(pools, router.ofJob(id), def);
  const all = [...pools.values()];
  // Backends and models belong to one pool each (config/pools.ts): merging their maps loses nothing.
  const merged = async <V>(read: (s: JobStore) => Promise<ReadonlyMap<string, V>>) => {
    const out = new Map<string, V>();
    for (const m of await Promise.all(all.map(read))) for (const [k, v] of m) out.set(k, v);
    return out;
  };
  return {
    read: (id) => of(id).read(id),
    events: (id, afterSeq, count) => of(id).events(id, afterSeq, count),
    async totals() {
      const ts = await Promise.all(all.map((s) => s.totals()));
      const depth = {} as Record<Priority, number>;
      for (const p of PRIORITIES) depth[p] = sum(ts.map((t) => t.depth[p]));
      const leases = new Map<string, number>();
      for (const t of ts) for (const [b, n] of t.leases) leases.set(b, n);
      return { depth, running: sum(ts.map((t) => t.running)), leases };
    },
    async aheadOfNew(customer, offsets) {
      const rs = await Promise.all(all.map((s) => s.aheadOfNew(customer, offsets)));
      const out = {} as Record<Priority, number>;
      for (const p of PRIORITIES) out[p] = sum(rs.map((r) => r[p]));
      return out;
    },
    async tenants(limit) {
      const rs = await Promise.all(all.map((s) => s.tenants(limit)));
      const byCustomer = new Map<string, TenantShare>();
      for (const r of rs) {
        for (const t of r.tenants) {
          const seen = byCustomer.get(t.customer);
          byCustomer.set(
            t.customer,
            seen
              ? {
                  customer: t.customer,
                  weight: Math.max(seen.weight, t.weight),
                  queued: seen.queued + t.queued,
                  running: seen.running + t.running,
                  held: seen.held + t.held,
                  gpuMs: seen.gpuMs + t.gpuMs,
                }
              : t,
          );
        }
      }
      const tenants = [...byCustomer.values()].sort((a, b) => (a.customer < b.customer ? -1 : 1));
      return { weight: sum(rs.map((r) => r.weight)), tenants: tenants.slice(0, limit ?? 1000) };
    },
    workRates: () => merged((s) => s.workRates()),
    leases: () => merged((s) => s.leases()),
    async depths() {
      const rs = await Promise.all(all.map((s) => s.depths()));
      const counts = new Map<string, { tier: string; priority: string; jobs: number }>();
      for (const r of rs) {
        for (const d of r.byTier) {
          const k = `${d.tier}\n${d.priority}`;
          const seen = counts.get(k);
          counts.set(k, { ...d, jobs: (seen?.jobs ?? 0) + d.jobs });
        }
      }
      return { byTier: [...counts.values()], activeTenants: sum(rs.map((r) => r.activeTenants)) };
    },
    // Each pool has an order of its own; the head of "all of them" is the default pool's (callers
    // that need a pool's head read that pool's store: the capacity view does).
    head: (count): Promise<QueuedWork[]> => pick(pools, def, def).head(count),
  };
}

export function createPooledIdempotency(
  router: PoolRouter,
  pools: ByPool<IdempotencyStore>,
): IdempotencyStore {
  const def = router.names[0]!;
  const of = (id: string) => pick(pools, router.ofJob(id), def);
  return {
    // The key is kept in the pool of the job it names (idem_begin.lua reads that job in the same step).
    begin: (customer, key, fingerprint, jobId, until) =>
      of(jobId).begin(customer, key, fingerprint, jobId, until),
    complete(customer, key, fingerprint, response) {
      const body = response.body as { id?: unknown } | null;
      const id = typeof body?.id === "string" ? body.id : "";
      return of(id).complete(customer, key, fingerprint, response);
    },
    release: (customer, key, jobId) => of(jobId).release(customer, key, jobId),
  };
}
