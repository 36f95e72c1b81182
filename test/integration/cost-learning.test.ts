// What the capacity snapshot reads from Redis, against a real redis-server: finish.lua learning each
// model's ms per work unit from completed attempts, the head of the order with its jobs' work, and
// the worker slot announcements (expiry, withdrawal, forgetting).
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { createScheduler, type Scheduler } from "../../src/queues/scheduler.js";
import { createJobStore, type JobStore } from "../../src/queues/job-store.js";
import { createKeys, workRateField } from "../../src/queues/keys.js";
import { createWorkerSlots, FORGET_AFTER_LOCKS } from "../../src/queues/worker-slots.js";
import { until } from "../helpers/processes.js";
import { testRedis, type TestRedis } from "../helpers/redis.js";

let r: TestRedis;
let sched: Scheduler;
let store: JobStore;
let now = 1_000_000;

const B1 = { id: "b1", cap: 4, engine: "nunchaku", models: ["*"], ok: true };
const DONE = { output: "sha256-x", outputs: ["sha256-x"], ctype: "image/png", seed: 7, gpu_ms: 5 };

async function admit(id: string, route: string, work?: number) {
  const [fam, mdl] = route.split("@")[0]!.split("/");
  const res = await sched.admit({
    id,
    route,
    priority: "normal",
    fields: {
      cust: "c1",
      prio: "normal",
      mod: "image",
      fam: fam!,
      mdl: mdl!,
      task: "t2i",
      fmt: "1024",
      seed: "7",
      mode: "async",
      ...(work === undefined ? {} : { work: String(work) }),
    },
    request: "{}",
    serviceMs: 1000,
    capacity: 1,
  });
  expect(res.admitted).toBe(true);
}

/** Starts the next job at `now` and completes it `tookMs` later. */
async function runNext(tookMs: number) {
  const [a] = await sched.dispatch(1, [B1]);
  expect(a).toBeDefined();
  now += tookMs;
  const res = await sched.finish(a!.id, a!.token, a!.backend, "complete", DONE);
  expect(res.ok).toBe(true);
  return a!.id;
}

beforeEach(() => {
  r = testRedis();
  now = 1_000_000;
  sched = createScheduler({
    redis: r.client,
    prefix: r.prefix,
    clock: () => now,
    leaseTtlMs: 60_000,
    maxAttempts: 3,
    retentionS: 3600,
    retentionCount: 1000,
  });
  store = createJobStore(r.client, r.prefix);
});

afterEach(async () => {
  await r.cleanup();
});

describe("finish learns ms per work unit per model", () => {
  it("divides the attempt's wall time by the job's work, whatever backend constraint its route has", async () => {
    await admit("j_big", "flux/schnell@b1", 4);
    await runNext(2_000);
    expect(await store.workRates()).toEqual(new Map([["flux/schnell", 500]]));
    expect(await r.client.hget(createKeys(r.prefix).stats, workRateField("flux/schnell"))).toBe("500");
  });

  it("moves the estimate a fifth of the way towards each new measurement (EWMA)", async () => {
    await admit("j_1", "flux/schnell", 2);
    await admit("j_2", "flux/schnell", 0.25);
    await runNext(1_000); // 500 ms per unit
    await runNext(250); // 1000 ms per unit
    expect((await store.workRates()).get("flux/schnell")).toBe(500 * 0.8 + 1_000 * 0.2);
  });

  it("keeps one estimate per model, and counts a job stored without work as one unit", async () => {
    await admit("j_dev", "flux/dev");
    await admit("j_schnell", "flux/schnell", 0.5);
    await runNext(3_000);
    await runNext(100);
    expect(await store.workRates()).toEqual(
      new Map([
        ["flux/dev", 3_000],
        ["flux/schnell", 200],
      ]),
    );
  });

  it("learns nothing from attempts that do not complete", async () => {
    await admit("j_retry", "flux/schnell", 1);
    const [a] = await sched.dispatch(1, [B1]);
    now += 700;
    await sched.finish(a!.id, a!.token, a!.backend, "retry", {
      error: { code: "x", message: "x", retriable: true },
    });
    expect((await store.workRates()).size).toBe(0);
  });
});

describe("the head of the order", () => {
  it("lists the next jobs to start with their model and work", async () => {
    await admit("j_a", "flux/schnell", 2.5);
    await admit("j_b", "flux/dev@b1");
    await admit("j_c", "flux/schnell", 1);
    expect(await store.head(2)).toEqual([
      { familyModel: "flux/schnell", work: 2.5 },
      { familyModel: "flux/dev", work: 1 },
    ]);
    expect(await store.head(0)).toEqual([]);
  });
});

describe("worker slot announcements", () => {
  it("count while they live, and stop counting when they expire", async () => {
    const slots = createWorkerSlots(r.client, r.prefix, Date.now);
    expect(await slots.read()).toEqual({ live: [], announced: false });
    await slots.announce("w-long", { slots: 4, backends: ["a", "b"] }, 60_000);
    await slots.announce("w-short", { slots: 2, backends: ["a"] }, 300);
    const first = await slots.read();
    expect(first.announced).toBe(true);
    expect(first.live.map((w) => w.workerId).sort()).toEqual(["w-long", "w-short"]);
    // no renewal: the short one's announcement expires (Redis drops it), the other stays
    const after = await until("the short announcement expires", async () => {
      const read = await slots.read();
      return read.live.length === 1 ? read : undefined;
    });
    expect(after).toEqual({
      live: [{ workerId: "w-long", slots: 4, backends: ["a", "b"] }],
      announced: true,
    });
  });

  it("stop counting at once when withdrawn, and the worker still counts as one that announced", async () => {
    const slots = createWorkerSlots(r.client, r.prefix, Date.now);
    await slots.announce("w1", { slots: 4, backends: ["a"] }, 60_000);
    await slots.withdraw("w1");
    expect(await slots.read()).toEqual({ live: [], announced: true });
  });

  it("forget workers whose announcement expired long ago", async () => {
    let clock = 0;
    const slots = createWorkerSlots(r.client, r.prefix, () => clock);
    const ttl = 60_000;
    await slots.announce("w-old", { slots: 1, backends: ["a"] }, ttl);
    clock = ttl + FORGET_AFTER_LOCKS * ttl + 1;
    await slots.announce("w-new", { slots: 1, backends: ["a"] }, ttl);
    expect(await r.client.zrange(createKeys(r.prefix).workers, "0", "-1")).toEqual(["w-new"]);
  });
});
