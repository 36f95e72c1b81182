// Weighted fair share in the scheduler's scripts (docs/decisions.md "Fair share"), against a real
// redis-server with a simulated fleet on a fake clock: a flood and a newcomer, weights by GPU time,
// the aging bound, positions as start order, idle tenants, running and queued limits, and counters
// that never drift.
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import type { Priority } from "../../src/core/job.js";
import { createJobStore, type JobStore } from "../../src/queues/job-store.js";
import { createKeys, orderKey } from "../../src/queues/keys.js";
import {
  createScheduler,
  type Attempt,
  type BackendView,
  type Scheduler,
  type TenantLimits,
} from "../../src/queues/scheduler.js";
import { testRedis, type TestRedis } from "../helpers/redis.js";

let r: TestRedis;
let now = 1_000_000;
let seq = 0;

interface Spec {
  readonly cust: string;
  readonly cost: number;
  readonly priority?: Priority;
  readonly tenant?: TenantLimits;
}

interface Fleet {
  readonly sched: Scheduler;
  readonly store: JobStore;
  readonly slots: number;
  /** What each admitted job is: its tenant and cost (the fake backend runs it for `cost` ms). */
  readonly jobs: Map<string, Spec>;
  /** Attempts on the fake backend, and when each ends (kept from one run to the next). */
  readonly running: { attempt: Attempt; endsAt: number }[];
  admit(spec: Spec, id?: string): Promise<string>;
}

function fleet(slots: number, agingBoundMs = 600_000, maxWeight = 1): Fleet {
  const sched = createScheduler({
    redis: r.client,
    prefix: r.prefix,
    clock: () => now,
    leaseTtlMs: 3_600_000,
    maxAttempts: 3,
    retentionS: 3600,
    retentionCount: 100_000,
    agingBoundMs,
    maxWeight,
  });
  const jobs = new Map<string, Spec>();
  return {
    sched,
    store: createJobStore(r.client, r.prefix),
    slots,
    jobs,
    running: [],
    async admit(spec, id = `j_${spec.cust}${String(++seq).padStart(6, "0")}`) {
      const priority = spec.priority ?? "normal";
      const res = await sched.admit({
        id,
        route: "flux/schnell",
        priority,
        fields: { cust: spec.cust, mod: "image", fam: "flux", mdl: "schnell", task: "t2i", seed: "1" },
        request: "{}",
        serviceMs: 1000,
        capacity: slots,
        costMs: spec.cost,
        tenant: spec.tenant ?? { weight: 1 },
      });
      if (!res.admitted) throw new Error(`${id} not admitted: ${res.reason}`);
      jobs.set(id, spec);
      return id;
    },
  };
}

interface Start {
  readonly id: string;
  readonly cust: string;
  readonly cost: number;
  readonly at: number;
}

/**
 * Runs the fleet on the fake clock: fills free slots, then jumps to the next completion and settles
 * it, until `stop` says so or nothing runs. `onStart` may admit more work (a flood that goes on).
 */
async function run(
  f: Fleet,
  stop: (starts: readonly Start[]) => boolean,
  onStart: (s: Start) => Promise<void> = async () => undefined,
): Promise<Start[]> {
  const starts: Start[] = [];
  const running = f.running;
  const view: BackendView = { id: "b1", cap: f.slots, engine: "nunchaku", models: ["*"], ok: true };
  for (let guard = 0; guard < 100_000; guard++) {
    const free = f.slots - running.length;
    if (free > 0) {
      for (const a of await f.sched.dispatch(free, [view])) {
        const spec = f.jobs.get(a.id)!;
        const s = { id: a.id, cust: spec.cust, cost: spec.cost, at: now };
        starts.push(s);
        running.push({ attempt: a, endsAt: now + spec.cost });
        await onStart(s);
      }
    }
    if (stop(starts) || running.length === 0) return starts;
    running.sort((x, y) => x.endsAt - y.endsAt);
    const done = running.shift()!;
    now = Math.max(now, done.endsAt);
    await f.sched.finish(done.attempt.id, done.attempt.token, "b1", "complete", {
      output: `sha256-${"c".repeat(64)}`,
      outputs: [`sha256-${"c".repeat(64)}`],
      ctype: "image/png",
      seed: 1,
      gpu_ms: f.jobs.get(done.attempt.id)!.cost,
    });
  }
  throw new Error("the fleet ran too long");
}

async function admitMany(f: Fleet, n: number, spec: Spec): Promise<string[]> {
  const ids: string[] = [];
  for (let i = 0; i < n; i += 200) {
    const batch = Array.from({ length: Math.min(200, n - i) }, () => f.admit(spec));
    ids.push(...(await Promise.all(batch)));
  }
  return ids;
}

/** GPU ms started per tenant among `starts`. */
function gpuByTenant(starts: readonly Start[]): Map<string, number> {
  const out = new Map<string, number>();
  for (const s of starts) out.set(s.cust, (out.get(s.cust) ?? 0) + s.cost);
  return out;
}

beforeEach(() => {
  r = testRedis();
  now = 1_000_000;
});

afterEach(async () => {
  await r.cleanup();
});

describe("fair share", () => {
  it("starts a newcomer's jobs beside a flood, not behind it", async () => {
    const f = fleet(4);
    await admitMany(f, 5000, { cust: "a", cost: 1000 });
    const b = await admitMany(f, 20, { cust: "b", cost: 1000 });
    const first = await f.store.read(b[0]!);
    // ahead of B's first job: at most one start time's worth of A's jobs (its first, at V)
    expect(first!.position).toBeLessThanOrEqual(1);
    const starts = await run(f, (s) => s.filter((x) => x.cust === "b").length === 20);
    // equal weights and costs: B's 20 jobs start among the first 40 (+1), one for one with A's
    expect(starts.findIndex((s) => s.cust === "b")).toBeLessThanOrEqual(1);
    expect(starts.length).toBeLessThanOrEqual(41);
  });

  it("splits started GPU time by weight (3:1) whatever the jobs cost (1 s vs 4 s)", async () => {
    const f = fleet(4);
    const x = { cust: "x", cost: 1000, tenant: { weight: 3 } };
    const y = { cust: "y", cost: 4000, tenant: { weight: 1 } };
    await admitMany(f, 400, x);
    await admitMany(f, 100, y);
    // both stay backlogged: every start is replaced by a job of the same tenant
    const starts = await run(
      f,
      (s) => s.length >= 400,
      async (s) => void (await f.admit(s.cust === "x" ? x : y)),
    );
    const gpu = gpuByTenant(starts.slice(40));
    const split = gpu.get("x")! / gpu.get("y")!;
    expect(split).toBeGreaterThan(3 * 0.9);
    expect(split).toBeLessThan(3 * 1.1);
  });

  it("gives an idle tenant no credit for its idle time", async () => {
    const f = fleet(2);
    await admitMany(f, 200, { cust: "a", cost: 1000 });
    // A alone for a while: 150 jobs start, the virtual time moves on
    await run(f, (s) => s.length >= 150);
    await admitMany(f, 100, { cust: "b", cost: 1000 });
    const starts = await run(f, (s) => s.length >= 40);
    const b = starts.filter((s) => s.cust === "b").length;
    // one for one from B's return on, not a burst of B's jobs paying back A's lead
    expect(b).toBeGreaterThanOrEqual(18);
    expect(b).toBeLessThanOrEqual(22);
  });

  it("orders 300 jobs of 10 tenants, mixed weights and priorities: positions are the start order", async () => {
    const f = fleet(1);
    const weights = [1, 1, 2, 2, 4, 4, 8, 8, 16, 1];
    const priorities: Priority[] = ["high", "normal", "low"];
    let rnd = 42;
    const next = () => (rnd = (rnd * 1103515245 + 12345) % 2 ** 31) / 2 ** 31;
    const ids: string[] = [];
    for (let i = 0; i < 300; i++) {
      const t = Math.floor(next() * 10);
      ids.push(
        await f.admit({
          cust: `t${t}`,
          cost: 200 + Math.floor(next() * 3000),
          priority: priorities[Math.floor(next() * 3)]!,
          tenant: { weight: weights[t]! },
        }),
      );
    }
    const positions = new Map<string, number>();
    for (const id of ids) positions.set(id, (await f.store.read(id))!.position);
    expect(new Set(positions.values()).size).toBe(300);
    const byPosition = [...positions].sort((p, q) => p[1] - q[1]).map(([id]) => id);
    const starts = await run(f, (s) => s.length >= 300);
    expect(starts.map((s) => s.id)).toEqual(byPosition);
  });
});

describe("the tenant's virtual time", () => {
  it("keeps a tenant's debt when its last queued job starts (it is running, still active)", async () => {
    const f = fleet(1);
    const view: BackendView = { id: "b1", cap: 1, engine: "nunchaku", models: ["*"], ok: true };
    await f.admit({ cust: "a", cost: 100_000 });
    await f.sched.dispatch(1, [view]);
    // (priority high: no offset, the keys are the start times)
    const b = await f.admit({ cust: "b", cost: 1000, priority: "high" });
    const a2 = await f.admit({ cust: "a", cost: 1000, priority: "high" });
    const keys = createKeys(r.prefix);
    const [sb, sa] = await Promise.all([r.client.zscore(keys.queue, b), r.client.zscore(keys.queue, a2)]);
    // A's second job starts where its first (100 s of the one slot) ended, after B's
    expect(Number(sa)).toBeGreaterThanOrEqual(orderKey(100_000, 0));
    expect(Number(sa)).toBeGreaterThan(Number(sb));
    expect(await f.store.read(b)).toMatchObject({ position: 0 });
  });

  it("gives exact positions to jobs of one key more than a day of virtual time on (scores past 10^14)", async () => {
    const f = fleet(4);
    const keys = createKeys(r.prefix);
    // ~28 h of virtual time: scores of 15 digits, past what Lua's number-to-string keeps exactly
    await r.client.hset(keys.fair, "V", 100_000_000);
    const positions: number[] = [];
    for (let i = 0; i < 12; i++) {
      // a new tenant each: every one starts at V, so the jobs share one key and differ by sequence
      const res = await f.sched.admit({
        id: `j_late${String(i).padStart(3, "0")}`,
        route: "flux/schnell",
        priority: "high",
        fields: { cust: `late${i}` },
        request: "{}",
        serviceMs: 1000,
        capacity: 4,
        costMs: 1000,
      });
      positions.push(res.admitted ? res.position : -1);
    }
    expect(positions).toEqual(Array.from({ length: 12 }, (_, i) => i));
    expect(Number(await r.client.zscore(keys.queue, "j_late000"))).toBeGreaterThan(1e14);
  });

  it("uses the fleet's last known slots while an admission knows none", async () => {
    const f = fleet(4);
    const keys = createKeys(r.prefix);
    const at = async (fleetSlots: number) => {
      await f.sched.admit({
        id: `j_slots${fleetSlots}${++seq}`,
        route: "flux/schnell",
        priority: "high",
        fields: { cust: "s" },
        request: "{}",
        serviceMs: 1000,
        capacity: 4,
        costMs: 4000,
        fleetSlots,
      });
      return Number(await r.client.hget(keys.tenant("s"), "F"));
    };
    expect(await at(4)).toBe(1000);
    // no worker reported lately: C stays 4, not 1
    expect(await at(0)).toBe(2000);
  });

  it("orders a job whose cost estimate is not a number by its route's service time", async () => {
    const f = fleet(1);
    await f.admit({ cust: "n", cost: Number.NaN });
    const F = Number(await r.client.hget(createKeys(r.prefix).tenant("n"), "F"));
    // the fleet's service time (1000 ms) on its one slot, weight 1
    expect(F).toBe(1000);
  });

  it("takes any gpu_ms a backend reports without breaking the settle", async () => {
    const f = fleet(1);
    const view: BackendView = { id: "b1", cap: 1, engine: "nunchaku", models: ["*"], ok: true };
    const id = await f.admit({ cust: "g", cost: 1000 });
    const [a] = await f.sched.dispatch(1, [view]);
    const res = await f.sched.finish(a!.id, a!.token, "b1", "complete", {
      output: `sha256-${"c".repeat(64)}`,
      outputs: [`sha256-${"c".repeat(64)}`],
      ctype: "image/png",
      seed: 1,
      gpu_ms: 1e20,
    });
    expect(res).toMatchObject({ ok: true, status: "complete" });
    expect((await f.store.read(id))!.job.status).toBe("complete");
    expect(await r.client.zcard(createKeys(r.prefix).lease("b1"))).toBe(0);
  });
});

describe("priorities within the aging bound", () => {
  const AGING = 20_000;

  /** Fleet ms from the low job's admission to its start, under a high flood that never runs dry. */
  async function lowJobWait(
    agingBoundMs: number,
    lowTenant: string,
    floodWeight = 1,
  ): Promise<number | undefined> {
    // each run on its own keys (a fleet of its own)
    await r.cleanup();
    r = testRedis();
    now = 1_000_000;
    // the tier table's largest weight is the flooder's: the bound holds for any one tenant
    const f = fleet(2, agingBoundMs, floodWeight);
    const high = { cust: "h", cost: 500, priority: "high" as const, tenant: { weight: floodWeight } };
    await admitMany(f, 40, high);
    await run(
      f,
      (s) => s.length >= 20,
      async () => void (await f.admit(high)),
    );
    const admittedAt = now;
    const low = await f.admit({
      cust: lowTenant,
      cost: 500,
      priority: "low",
      tenant: { weight: lowTenant === "h" ? floodWeight : 1 },
    });
    const starts = await run(
      f,
      (s) => s.some((x) => x.id === low) || now - admittedAt > 10 * AGING,
      async () => void (await f.admit(high)),
    );
    const started = starts.find((s) => s.id === low);
    return started === undefined ? undefined : started.at - admittedAt;
  }

  it("starts a low job of the flooding tenant within the bound (and never with strict priorities)", async () => {
    const wait = await lowJobWait(AGING, "h");
    expect(wait).toBeDefined();
    // the bound, plus the high jobs queued when it came and one job's length
    expect(wait!).toBeLessThanOrEqual(AGING + 40 * 250 + 500);
    expect(await lowJobWait(1e12, "h")).toBeUndefined();
  });

  it("starts a low job of another tenant within the bound", async () => {
    const wait = await lowJobWait(AGING, "l");
    expect(wait).toBeDefined();
    expect(wait!).toBeLessThanOrEqual(AGING + 500);
  });

  it("holds the bound for a flooding tenant of the largest weight (16), its own low job or another's", async () => {
    const other = await lowJobWait(AGING, "l", 16);
    expect(other).toBeDefined();
    expect(other!).toBeLessThanOrEqual(AGING + 500);
    const own = await lowJobWait(AGING, "h", 16);
    expect(own).toBeDefined();
    expect(own!).toBeLessThanOrEqual(AGING + 40 * 250 + 500);
  });
});

describe("tenant limits", () => {
  it("holds a tenant's jobs at its running limit without blocking others, and frees them", async () => {
    const f = fleet(6);
    const a = { cust: "a", cost: 1000, tenant: { weight: 1, maxRunning: 2 } };
    const aIds = await admitMany(f, 10, a);
    await admitMany(f, 10, { cust: "b", cost: 1000 });
    const keys = createKeys(r.prefix);
    const starts = await run(
      f,
      (s) => s.length >= 20,
      async () => {
        expect(Number(await r.client.hget(keys.tenant("a"), "r"))).toBeLessThanOrEqual(2);
      },
    );
    // the first six slots: two of A's, four of B's
    expect(starts.slice(0, 6).filter((s) => s.cust === "a")).toHaveLength(2);
    expect(starts.filter((s) => s.cust === "a")).toHaveLength(10);
    void aIds;
  });

  it("shows a job held at the running limit as held, and not once it may start", async () => {
    const f = fleet(4);
    const a = { cust: "a", cost: 1000, tenant: { weight: 1, maxRunning: 1 } };
    const [first, second] = await admitMany(f, 2, a);
    const view: BackendView = { id: "b1", cap: 4, engine: "nunchaku", models: ["*"], ok: true };
    const [att] = await f.sched.dispatch(4, [view]);
    expect(att!.id).toBe(first);
    expect(await f.store.read(second!)).toMatchObject({ position: 0, held: true });
    await f.sched.finish(att!.id, att!.token, "b1", "busy", { cool_ms: 0 });
    // back in the queue at its place: both queued, the first one ahead, neither held
    expect(await f.store.read(first!)).toMatchObject({ position: 0, held: false });
    expect(await f.store.read(second!)).toMatchObject({ position: 1, held: false });
  });

  it("lets every held job go once the tenant's tier has no running limit any more", async () => {
    const f = fleet(4);
    const [first, ...rest] = await admitMany(f, 3, {
      cust: "a",
      cost: 1000,
      tenant: { weight: 1, maxRunning: 1 },
    });
    const view: BackendView = { id: "b1", cap: 4, engine: "nunchaku", models: ["*"], ok: true };
    const [att] = await f.sched.dispatch(4, [view]);
    expect(att!.id).toBe(first);
    for (const id of rest) expect((await f.store.read(id))!.held).toBe(true);
    // the customer's next submit comes with a tier without a running limit
    const uncapped = await f.admit({ cust: "a", cost: 1000, tenant: { weight: 1 } });
    await f.sched.finish(att!.id, att!.token, "b1", "complete", {
      output: `sha256-${"c".repeat(64)}`,
      outputs: [`sha256-${"c".repeat(64)}`],
      ctype: "image/png",
      seed: 1,
      gpu_ms: 5,
    });
    const started = await f.sched.dispatch(4, [view]);
    expect(started.map((a) => a.id).sort()).toEqual([...rest, uncapped].sort());
  });

  it("refuses a tenant's submit beyond its queued limit, and everyone's beyond QUEUE_MAX", async () => {
    const f = fleet(1);
    const a = { cust: "a", cost: 1000, tenant: { weight: 1, maxQueued: 3 } };
    await admitMany(f, 3, a);
    const res = await f.sched.admit({
      id: "j_over",
      route: "flux/schnell",
      priority: "normal",
      fields: { cust: "a" },
      request: "{}",
      serviceMs: 1000,
      capacity: 1,
      tenant: a.tenant,
    });
    expect(res).toEqual({ admitted: false, reason: "queue_full", scope: "tenant", queued: 3 });
    expect(await r.client.exists(createKeys(r.prefix).job("j_over"))).toBe(0);
    await admitMany(f, 2, { cust: "b", cost: 1000 });
    const all = createScheduler({
      redis: r.client,
      prefix: r.prefix,
      clock: () => now,
      leaseTtlMs: 60_000,
      maxAttempts: 3,
      retentionS: 3600,
      retentionCount: 100,
      queueMax: 5,
    });
    const full = await all.admit({
      id: "j_over2",
      route: "flux/schnell",
      priority: "normal",
      fields: { cust: "c" },
      request: "{}",
      serviceMs: 1000,
      capacity: 1,
    });
    expect(full).toEqual({ admitted: false, reason: "queue_full", scope: "all", queued: 5 });
  });

  it("keeps the counters exact through cancels, retries, hand-backs, lost workers and completions", async () => {
    const f = fleet(3);
    const keys = createKeys(r.prefix);
    const ids = [
      ...(await admitMany(f, 6, { cust: "a", cost: 1000, tenant: { weight: 2, maxRunning: 2 } })),
      ...(await admitMany(f, 6, { cust: "b", cost: 1000, priority: "low", tenant: { weight: 3 } })),
    ];
    const view: BackendView = { id: "b1", cap: 3, engine: "nunchaku", models: ["*"], ok: true };
    const check = async () => {
      const [wa, wb] = [2, 3];
      for (const [cust, w] of [
        ["a", wa],
        ["b", wb],
      ] as const) {
        const mine = ids.filter((id) => f.jobs.get(id)!.cust === cust);
        const status = await Promise.all(mine.map((id) => r.client.hget(keys.job(id), "status")));
        const t = await r.client.hmget(keys.tenant(cust), "q", "r", "aw");
        const leases = await r.client.zrange(keys.lease("b1"), "0", "-1");
        expect(Number(t[0] ?? 0), `${cust} queued`).toBe(status.filter((s) => s === "queued").length);
        expect(Number(t[1] ?? 0), `${cust} running`).toBe(
          leases.filter((m) => mine.some((id) => m.startsWith(`${id}|`))).length,
        );
        const active = Number(t[0] ?? 0) + Number(t[1] ?? 0) > 0;
        expect(await r.client.sismember(keys.activeTenants, cust)).toBe(active ? 1 : 0);
        expect(t[2] === null ? 0 : Number(t[2])).toBe(active ? w : 0);
      }
      const active = await r.client.smembers(keys.activeTenants);
      const w = active.reduce((sum, c) => sum + (c === "a" ? 2 : 3), 0);
      expect(Number((await r.client.hget(keys.fair, "W")) ?? 0)).toBe(w);
      const depth = (await f.store.totals()).depth;
      expect(depth.normal + depth.low + depth.high).toBe(await r.client.zcard(keys.queue));
    };
    await check();
    let attempts = await f.sched.dispatch(3, [view]);
    await check();
    await f.sched.cancel(ids[0]!, "a"); // running
    await f.sched.cancel(ids[11]!, "b"); // queued
    await check();
    await f.sched.finish(attempts[1]!.id, attempts[1]!.token, "b1", "retry", {
      error: { code: "backend_error", message: "x", retriable: true },
      notbefore: now + 1000,
    });
    await f.sched.finish(attempts[2]!.id, attempts[2]!.token, "b1", "busy", { cool_ms: 0 });
    await f.sched.finish(attempts[0]!.id, attempts[0]!.token, "b1", "complete", {
      output: `sha256-${"c".repeat(64)}`,
      outputs: [`sha256-${"c".repeat(64)}`],
      gpu_ms: 5,
    });
    await check();
    attempts = await f.sched.dispatch(3, [view]);
    await check();
    // their worker is lost: the leases expire and reap puts the jobs back
    now += 3_600_001;
    await f.sched.reap();
    await check();
    // everything runs to the end: no tenant stays active, W returns to 0
    await run(f, () => false);
    await check();
    expect(await r.client.smembers(keys.activeTenants)).toEqual([]);
    expect(Number(await r.client.hget(keys.fair, "W"))).toBe(0);
    // and keeps no record of them (the records do not grow with every customer ever seen)
    expect(await r.client.exists(keys.tenant("a"), keys.tenant("b"))).toBe(0);
  });
});
