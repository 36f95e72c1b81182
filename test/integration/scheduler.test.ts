// The scheduler's scripts against a real redis-server: order, positions, leases, transitions.
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { createScheduler, type BackendView, type Scheduler } from "../../src/queues/scheduler.js";
import { createJobStore, type JobStore } from "../../src/queues/job-store.js";
import type { Priority } from "../../src/core/job.js";
import { testRedis, type TestRedis } from "../helpers/redis.js";
import { createKeys } from "../../src/queues/keys.js";

let r: TestRedis;
let sched: Scheduler;
let store: JobStore;
let now = 1_000_000;

const backend = (id: string, cap: number, models: string[] = ["*"], engine = "nunchaku"): BackendView => ({
  id,
  cap,
  engine,
  models,
  ok: true,
});

function fields(priority: Priority, model = "flux/schnell") {
  const [fam, mdl] = model.split("/");
  return {
    cust: "c1",
    prio: priority,
    mod: "image",
    fam: fam!,
    mdl: mdl!,
    task: "t2i",
    fmt: "1024",
    seed: "7",
    mode: "async",
  };
}

async function admit(
  id: string,
  priority: Priority = "normal",
  model = "flux/schnell",
  ttlAt?: number,
  ttlIsDefault = false,
) {
  const res = await sched.admit({
    id,
    route: model,
    priority,
    fields: fields(priority, model),
    request: JSON.stringify({ prompt: "a cat" }),
    serviceMs: 1000,
    capacity: 2,
    ...(ttlAt === undefined ? {} : { ttlAt }),
    ...(ttlIsDefault ? { ttlIsDefault } : {}),
  });
  if (!res.admitted) throw new Error(`not admitted: ${res.reason}`);
  return res;
}

beforeEach(() => {
  r = testRedis();
  now = 1_000_000;
  sched = createScheduler({
    redis: r.client,
    prefix: r.prefix,
    clock: () => now,
    leaseTtlMs: 5_000,
    maxAttempts: 3,
    retentionS: 3600,
    retentionCount: 1000,
  });
  store = createJobStore(r.client, r.prefix);
});

afterEach(async () => {
  await r.cleanup();
});

describe("scheduler", () => {
  it("stores what an admission sends exactly as the caller formatted it (admit.lua's packed argument)", async () => {
    const customer = 'ü-客户 "q" \\ x';
    const at = 1_000_000.5;
    const res = await sched.admit({
      id: "j_exact",
      route: "flux/schnell",
      priority: "high",
      fields: { ...fields("high"), cust: customer, webhook: "https://example.com/h?a=1&b=ü" },
      request: JSON.stringify({ prompt: 'ü "x"' }),
      serviceMs: 1000,
      capacity: 2,
      now: at,
      ttlAt: at + 86_400_000,
      inputs: ["sha256-aa", "sha256-bb"],
      tenant: { weight: 3, maxRunning: 2, maxQueued: 5 },
    });
    expect(res).toMatchObject({ admitted: true, position: 0 });
    const k = createKeys(r.prefix);
    const job = await r.client.hgetall(k.job("j_exact"));
    expect(job).toMatchObject({
      id: "j_exact",
      route: "flux/schnell",
      created: "1000000.5",
      cust: customer,
      prio: "high",
      inputs: "sha256-aa sha256-bb",
      ttl_at: "87400000.5",
      req: JSON.stringify({ prompt: 'ü "x"' }),
      webhook: "https://example.com/h?a=1&b=ü",
      seed: "7",
    });
    expect(job.tier).toBeUndefined();
    expect(job.ttl_def).toBeUndefined();
    expect(await r.client.zscore(k.ttlIndex, "j_exact")).toBe("87400000.5");
    expect(await r.client.hmget(k.tenant(customer), "w", "cap")).toEqual(["3", "2"]);
    expect(await r.client.hmget(k.casLive, "sha256-aa", "sha256-bb")).toEqual(["1", "1"]);
    // the same call again is this admission resent: answered with its place, nothing stored twice
    const again = await sched.admit({
      id: "j_exact",
      route: "flux/schnell",
      priority: "high",
      fields: { ...fields("high"), cust: customer },
      request: "{}",
      serviceMs: 1000,
      capacity: 2,
      now: at,
      inputs: ["sha256-aa", "sha256-bb"],
    });
    expect(again).toMatchObject({ admitted: true, position: 0 });
    expect(await r.client.hmget(k.casLive, "sha256-aa")).toEqual(["1"]);
  });

  it("orders by priority class then arrival and reports exact positions", async () => {
    const order: [string, Priority][] = [
      ["j_a", "low"],
      ["j_b", "normal"],
      ["j_c", "high"],
      ["j_d", "normal"],
      ["j_e", "high"],
    ];
    for (const [id, p] of order) await admit(id, p);
    const positions = await Promise.all(order.map(async ([id]) => (await store.read(id))!.position));
    expect(positions).toEqual([4, 2, 0, 3, 1]);

    const started: string[] = [];
    for (;;) {
      const d = await sched.dispatch(1, [backend("b1", 1)]);
      if (d.length === 0) break;
      started.push(d[0]!.id);
      await sched.finish(d[0]!.id, d[0]!.token, "b1", "complete", {
        output: "sha256-x",
        outputs: ["sha256-x"],
        ctype: "image/png",
        seed: 7,
        gpu_ms: 5,
      });
    }
    expect(started).toEqual(["j_c", "j_e", "j_b", "j_d", "j_a"]);
  });

  it("never leases more slots than a backend has, and leases return to zero", async () => {
    for (let i = 0; i < 6; i++) await admit(`j_${i}`);
    const first = await sched.dispatch(10, [backend("b1", 2), backend("b2", 1)]);
    expect(first.map((d) => d.backend).sort()).toEqual(["b1", "b1", "b2"]);
    expect(await sched.dispatch(10, [backend("b1", 2), backend("b2", 1)])).toEqual([]);
    expect((await store.totals()).running).toBe(3);
    for (const d of first) {
      await sched.finish(d.id, d.token, d.backend, "complete", {
        output: "sha256-x",
        outputs: ["sha256-x"],
        ctype: "image/png",
        seed: 1,
        gpu_ms: 1,
      });
    }
    expect((await store.totals()).running).toBe(0);
  });

  it("rejects a late completion from a superseded attempt", async () => {
    await admit("j_late");
    const [d] = await sched.dispatch(1, [backend("b1", 1)]);
    now += 10_000; // lease expired: the worker is presumed dead
    expect(await sched.reap()).toBe(1);
    const [d2] = await sched.dispatch(1, [backend("b1", 1)]);
    expect(d2!.token).not.toBe(d!.token);
    const late = await sched.finish(d!.id, d!.token, "b1", "complete", {
      output: "sha256-old",
      outputs: ["sha256-old"],
      ctype: "image/png",
      seed: 1,
      gpu_ms: 1,
    });
    expect(late).toEqual({ ok: false, reason: "stale", next: [] });
    const ok = await sched.finish(d2!.id, d2!.token, "b1", "complete", {
      output: "sha256-new",
      outputs: ["sha256-new"],
      ctype: "image/png",
      seed: 1,
      gpu_ms: 1,
    });
    expect(ok).toEqual({ ok: true, status: "complete", next: [] });
    const job = (await store.read("j_late"))!.job;
    expect(job.output).toBe("sha256-new");
    expect(job.attemptLog.map((a) => a.outcome)).toEqual(["lost", "complete"]);
    expect((await store.totals()).running).toBe(0);
  });

  it("cancels queued and running jobs with the right results", async () => {
    await admit("j_q");
    await admit("j_r");
    const ds = await sched.dispatch(1, [backend("b1", 2)]);
    expect(ds.map((d) => d.id)).toEqual(["j_q"]);
    expect(await sched.cancel("j_r", "c1")).toBe("was_queued");
    expect(await sched.cancel("j_q", "other")).toBe("missing");
    expect(await sched.cancel("j_q", "c1")).toBe("was_running");
    expect(await sched.cancel("j_q", "c1")).toBe("terminal");
    const fin = await sched.finish("j_q", ds[0]!.token, "b1", "complete", {
      output: "sha256-x",
      outputs: ["sha256-x"],
      ctype: "image/png",
      seed: 1,
      gpu_ms: 40,
    });
    expect(fin).toEqual({ ok: false, reason: "cancelled", next: [] });
    const job = (await store.read("j_q"))!.job;
    expect(job.status).toBe("cancelled");
    expect(job.output).toBeUndefined();
    expect(job.gpuMs).toBe(40);
    const t = await store.totals();
    expect(t.running).toBe(0);
    expect(t.depth).toEqual({ high: 0, normal: 0, low: 0 });
  });

  it("starts the worker's next attempt in the same step as it settles one", async () => {
    await admit("j_1");
    await admit("j_2");
    const [d] = await sched.dispatch(1, [backend("b1", 1)]);
    const fin = await sched.finish(
      d!.id,
      d!.token,
      "b1",
      "complete",
      { output: "sha256-x", outputs: ["sha256-x"], ctype: "image/png", seed: 1, gpu_ms: 1 },
      { slots: 1, backends: [backend("b1", 1)] },
    );
    expect(fin.ok).toBe(true);
    expect(fin.next.map((a) => a.id)).toEqual(["j_2"]);
    expect(fin.next[0]!.request).toBe(JSON.stringify({ prompt: "a cat" }));
    expect((await store.read("j_2"))!.job.status).toBe("running");
  });

  it("requeues a retriable failure at its place after the backoff, and errors when attempts run out", async () => {
    await admit("j_retry");
    await admit("j_next");
    for (let attempt = 1; attempt <= 3; attempt++) {
      const ds = await sched.dispatch(1, [backend("b1", 1)]);
      expect(ds[0]!.id).toBe("j_retry");
      const res = await sched.finish(ds[0]!.id, ds[0]!.token, "b1", "retry", {
        error: { code: "backend_error", message: "backend answered 500", retriable: true },
        notbefore: now + 1000,
      });
      if (attempt < 3) {
        expect(res).toEqual({ ok: true, status: "queued", next: [] });
        expect((await store.read("j_retry"))!.position).toBe(0);
        now += 1001;
      } else {
        expect(res).toEqual({ ok: true, status: "error", next: [] });
      }
    }
    const job = (await store.read("j_retry"))!.job;
    expect(job.error?.code).toBe("backend_error");
    expect(job.attempts).toBe(3);
  });

  it("hands a busy answer back without spending an attempt and cools the backend down", async () => {
    await admit("j_busy");
    const [d] = await sched.dispatch(1, [backend("b1", 1), backend("b2", 1)]);
    await sched.finish(d!.id, d!.token, d!.backend, "busy", { cool_ms: 60_000 });
    const [d2] = await sched.dispatch(1, [backend("b1", 1), backend("b2", 1)]);
    expect(d2!.backend).not.toBe(d!.backend);
    const job = (await store.read("j_busy"))!.job;
    expect(job.status).toBe("running");
    // the busy hand-back is folded into the next attempt's entry (no growth while a backend is busy)
    expect(job.attemptLog).toHaveLength(1);
    expect(job.attemptLog[0]).toMatchObject({ attempt: 1, backend: d2!.backend, busy: 1 });
    expect(job.attempts).toBe(1);
  });

  it("expires jobs not started within their ttl and never dispatches them", async () => {
    await admit("j_ttl", "normal", "flux/schnell", now + 1000);
    now += 2000;
    expect(await sched.expire()).toBe(1);
    const job = (await store.read("j_ttl"))!.job;
    expect(job.status).toBe("cancelled");
    expect(job.error?.code).toBe("ttl_expired");
    expect(await sched.dispatch(1, [backend("b1", 1)])).toEqual([]);
  });

  it("expires default ttls, which are not indexed, by the oldest jobs of each class", async () => {
    await admit("j_def_high", "high", "flux/schnell", now + 1000, true);
    await admit("j_def_low", "low", "flux/schnell", now + 1000, true);
    await admit("j_def_later", "low", "flux/schnell", now + 60_000, true);
    await admit("j_sent", "low", "flux/schnell", now + 60_000);
    expect(await r.client.zcard(createKeys(r.prefix).ttlIndex)).toBe(1);
    now += 2000;
    expect(await sched.expire()).toBe(2);
    for (const id of ["j_def_high", "j_def_low"]) {
      const job = (await store.read(id))!.job;
      expect(job.status).toBe("cancelled");
      expect(job.error?.code).toBe("ttl_expired");
    }
    expect((await store.read("j_def_later"))!.job.status).toBe("queued");
    now += 60_000;
    expect(await sched.expire()).toBe(2);
  });

  it("never starts a job past its default ttl, also before the sweep got to it", async () => {
    await admit("j_def", "normal", "flux/schnell", now + 1000, true);
    now += 2000;
    expect(await sched.dispatch(1, [backend("b1", 1)])).toEqual([]);
    expect((await store.read("j_def"))!.job.error?.code).toBe("ttl_expired");
  });

  it("passes over a started job with a default ttl at the head of its class, and expires the next", async () => {
    await admit("j_def_started", "normal", "flux/schnell", now + 1000, true);
    await admit("j_def_waiting", "normal", "flux/schnell", now + 1000, true);
    const [d] = await sched.dispatch(1, [backend("b1", 1)]);
    expect(d?.id).toBe("j_def_started");
    await sched.finish(d!.id, d!.token, "b1", "busy", {});
    now += 5000;
    expect(await sched.expire()).toBe(1);
    expect((await store.read("j_def_waiting"))!.job.status).toBe("cancelled");
    expect((await store.read("j_def_started"))!.job.status).toBe("queued");
  });

  it("dispatches other routes while one route's backends are full (work conserving)", async () => {
    await admit("j_f1", "normal", "flux/schnell");
    await admit("j_f2", "normal", "flux/schnell");
    await admit("j_w1", "normal", "wan/default");
    const bs = [backend("flux", 1, ["flux/schnell"]), backend("wan", 1, ["wan/default"], "torch")];
    const ds = await sched.dispatch(5, bs);
    expect(ds.map((d) => d.id)).toEqual(["j_f1", "j_w1"]);
  });

  it("prefers the model's default engine, then falls back to the least loaded other backend", async () => {
    for (let i = 0; i < 4; i++) await admit(`j_p${i}`, "normal", "wan/default");
    const bs = [backend("nun", 2, ["*"], "nunchaku"), backend("tor", 2, ["*"], "torch")];
    const ds = await sched.dispatch(4, bs, { "wan/default": "torch" });
    expect(ds.map((d) => d.backend)).toEqual(["tor", "tor", "nun", "nun"]);
  });

  it("never expires a job by its ttl once it started, also after a retry puts it back", async () => {
    await admit("j_started", "normal", "flux/schnell", now + 1000);
    const [d] = await sched.dispatch(1, [backend("b1", 1)]);
    await sched.finish(d!.id, d!.token, "b1", "busy", {});
    now += 5000;
    expect(await sched.expire()).toBe(0);
    const [again] = await sched.dispatch(1, [backend("b1", 1)]);
    expect(again?.id).toBe("j_started");
    expect((await store.read("j_started"))!.job.status).toBe("running");
  });

  it("changes nothing on a malformed settle (the lease stays until settled properly)", async () => {
    await admit("j_bad");
    const [d] = await sched.dispatch(1, [backend("b1", 1)]);
    await expect(sched.finish(d!.id, d!.token, "b1", "complete", { output: "sha256-x" })).rejects.toThrow(
      /outputs/,
    );
    expect((await store.read("j_bad"))!.job.status).toBe("running");
    expect((await store.totals()).running).toBe(1);
    const ok = await sched.finish(d!.id, d!.token, "b1", "complete", {
      output: "sha256-x",
      outputs: ["sha256-x"],
      ctype: "image/png",
      seed: 1,
      gpu_ms: 1,
    });
    expect(ok.ok).toBe(true);
    expect((await store.totals()).running).toBe(0);
  });

  it("answers a resent dispatch with the first reply instead of starting a second batch", async () => {
    await admit("j_r1");
    await admit("j_r2");
    const run = (r.client as unknown as Record<string, (...a: unknown[]) => Promise<unknown>>).rg_dispatch!;
    const args = [
      createKeys(r.prefix).queue,
      r.prefix,
      now,
      1,
      JSON.stringify([backend("b1", 2)]),
      5000,
      "resend-test.",
      3600,
      1000,
      "{}",
    ];
    const first = (await run.apply(r.client, args)) as string[];
    const second = (await run.apply(r.client, args)) as string[];
    expect(second).toEqual(first);
    expect((await store.totals()).running).toBe(1);
    expect((await store.read("j_r2"))!.job.status).toBe("queued");
  });

  it("expires at most 100 jobs per dispatch call", async () => {
    for (let i = 0; i < 130; i++) await admit(`j_x${i}`, "normal", "flux/schnell", now + 10);
    now += 100;
    expect(await sched.dispatch(1, [backend("b1", 1)])).toEqual([]);
    const cancelled = (
      await Promise.all(Array.from({ length: 130 }, (_, i) => store.read(`j_x${i}`)))
    ).filter((j) => j!.job.status === "cancelled");
    expect(cancelled).toHaveLength(100);
  });

  it("refuses admission beyond the caller's position limit and stores nothing", async () => {
    await admit("j_1");
    await admit("j_2");
    const res = await sched.admit({
      id: "j_3",
      route: "flux/schnell",
      priority: "normal",
      fields: fields("normal"),
      request: "{}",
      maxPosition: 1,
      serviceMs: 1000,
      capacity: 1,
    });
    expect(res).toEqual({ admitted: false, reason: "too_far", position: 2 });
    expect(await store.read("j_3")).toBeUndefined();
  });

  it("judges the sync tier's check on the leases held at the admission, and the tenant's running limit", async () => {
    // two jobs of c1 running on b1 (2 slots): the snapshot a caller read before may say otherwise
    await admit("j_run1");
    await admit("j_run2");
    expect(await sched.dispatch(2, [backend("b1", 2)])).toHaveLength(2);
    const sync = (id: string, waves: number, o: { cust?: string; maxRunning?: number } = {}) =>
      sched.admit({
        id,
        route: "flux/schnell",
        priority: "normal",
        fields: { ...fields("normal"), cust: o.cust ?? "c2" },
        request: "{}",
        serviceMs: 1000,
        capacity: 2,
        ...(o.maxRunning === undefined ? {} : { tenant: { weight: 1, maxRunning: o.maxRunning } }),
        startWithin: { slots: 2, waves, backends: ["b1"] },
      });
    // both slots leased: nothing starts within the first wave
    expect(await sync("j_s0", 0)).toEqual({ admitted: false, reason: "too_far", position: 0 });
    // one wave more: positions 0 and 1 start when the running jobs end
    expect(await sync("j_s1", 1)).toMatchObject({ admitted: true, position: 0 });
    expect(await sync("j_s2", 1)).toMatchObject({ admitted: true, position: 1 });
    expect(await sync("j_s3", 1)).toEqual({ admitted: false, reason: "too_far", position: 2 });
    expect(await store.read("j_s0")).toBeUndefined();
    expect(await store.read("j_s3")).toBeUndefined();
    // a slot free, but the tenant at its running limit: held until one of its jobs ends
    await sched.cancel("j_s1", "c2");
    await sched.cancel("j_s2", "c2");
    await r.client.del(createKeys(r.prefix).lease("b1"));
    expect(await sync("j_c1", 0, { cust: "c1", maxRunning: 2 })).toEqual({
      admitted: false,
      reason: "too_far",
      position: 0,
    });
    expect(await sync("j_c2", 0, { cust: "c1", maxRunning: 3 })).toMatchObject({ admitted: true });
    // running 2 and now 1 queued: the limit of 3 is reached by the jobs ahead of a new one
    expect(await sync("j_c3", 0, { cust: "c1", maxRunning: 3 })).toMatchObject({ reason: "too_far" });
  });

  it("counts the worker slots the route shares with the workers' other backends", async () => {
    // one worker of 2 slots serves b1 (this route's) and b2; both its slots run jobs on b2
    await admit("j_b2a");
    await admit("j_b2b");
    expect(await sched.dispatch(2, [backend("b2", 4)])).toHaveLength(2);
    const input = (id: string, workers?: { slots: number; backends: string[] }) => ({
      id,
      route: "flux/schnell",
      priority: "normal" as const,
      fields: { ...fields("normal"), cust: "c2" },
      request: "{}",
      serviceMs: 1000,
      capacity: 2,
      startWithin: { slots: 4, waves: 0, backends: ["b1"], ...(workers ? { workers } : {}) },
    });
    expect(await sched.admit(input("j_w1", { slots: 2, backends: ["b1", "b2"] }))).toEqual({
      admitted: false,
      reason: "too_far",
      position: 0,
    });
    // with a worker of its own for b1, b1's free slots count
    expect(await sched.admit(input("j_w2", { slots: 4, backends: ["b1"] }))).toMatchObject({
      admitted: true,
      position: 0,
    });
  });

  it("answers a resent admission (same id, time and customer) as admitted, and any other as existing", async () => {
    await admit("j_first");
    const input = {
      id: "j_dup",
      route: "flux/schnell",
      priority: "normal" as const,
      fields: fields("normal"),
      request: "{}",
      serviceMs: 1000,
      capacity: 2,
      now: 5_000,
    };
    expect(await sched.admit(input)).toEqual({ admitted: true, position: 1, etaSeconds: 1 });
    expect(await sched.admit(input)).toEqual({ admitted: true, position: 1 });
    expect(await sched.admit({ ...input, now: 5_001 })).toEqual({ admitted: false, reason: "exists" });
    expect(await sched.admit({ ...input, fields: { ...fields("normal"), cust: "c2" } })).toEqual({
      admitted: false,
      reason: "exists",
    });
    expect((await store.totals()).depth.normal).toBe(2);
  });

  it("gives each admitted job the ETA of its position on the route's capacity", async () => {
    const etas: (number | undefined)[] = [];
    for (let i = 0; i < 3; i++) {
      const res = await admit(`j_eta${i}`);
      etas.push(res.admitted ? res.etaSeconds : -1);
    }
    expect(etas).toEqual([1, 1, 2]);
    const none = await sched.admit({
      id: "j_eta_none",
      route: "flux/schnell",
      priority: "normal",
      fields: fields("normal"),
      request: "{}",
      serviceMs: 1000,
      capacity: 0,
    });
    expect(none).toEqual({ admitted: true, position: 3 });
  });

  it("starts a retried job after its backoff on another backend, carrying its record's fields", async () => {
    await admit("j_avoid");
    const bs = [backend("b1", 1), backend("b2", 1)];
    const [d] = await sched.dispatch(1, bs);
    expect(d).toMatchObject({ attempt: 1, spent: 0, modality: "image", family: "flux", model: "schnell" });
    expect(d).toMatchObject({ task: "t2i", seed: 7, route: "flux/schnell" });
    await sched.finish(d!.id, d!.token, d!.backend, "retry", {
      error: { code: "backend_error", message: "backend answered 500", retriable: true },
      notbefore: now + 1000,
    });
    expect(await sched.dispatch(2, bs)).toEqual([]);
    expect((await store.read("j_avoid"))!.position).toBe(0);
    now += 1000;
    const [d2] = await sched.dispatch(2, bs);
    expect(d2).toMatchObject({ id: "j_avoid", attempt: 2, spent: 1, seed: 7 });
    expect(d2!.backend).not.toBe(d!.backend);
    const job = (await store.read("j_avoid"))!.job;
    expect(job.status).toBe("running");
    expect(job.attemptLog.map((a) => a.outcome)).toEqual(["retry", undefined]);
  });

  it("records events with monotonic ids", async () => {
    await admit("j_ev");
    const [d] = await sched.dispatch(1, [backend("b1", 1)]);
    await sched.progress("j_ev", d!.token, 0.5, 2, 4);
    await sched.finish(d!.id, d!.token, "b1", "complete", {
      output: "sha256-x",
      outputs: ["sha256-x"],
      ctype: "image/png",
      seed: 1,
      gpu_ms: 3,
    });
    const evs = await store.events("j_ev", 0);
    expect(evs.map((e) => [e.seq, e.event])).toEqual([
      [1, "started"],
      [2, "progress"],
      [3, "complete"],
    ]);
    expect((await store.events("j_ev", 1)).map((e) => e.seq)).toEqual([2, 3]);
  });
});
