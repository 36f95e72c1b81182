// Chained attempts: the attempt a settle starts for the settling slot runs in that slot without a
// round trip through the BullMQ `render` queue; attempts for other free slots, and the first ones
// of a dispatch pass, still go through it. A chained attempt started while the worker stops is
// handed back unbegun (no attempt spent, no backend call).
import type { Redis } from "ioredis";
import { afterEach, describe, expect, it } from "vitest";
import { redisUrl } from "../helpers/redis.js";
import { FLUX_SCHNELL_512, queueJob, startSystem, waitFor, type TestSystem } from "../helpers/system.js";
import { startFaultProxy, type FaultProxy } from "../helpers/tcp-proxy.js";
import { createKeys } from "../../src/queues/keys.js";

let sys: TestSystem | undefined;
let proxy: FaultProxy | undefined;

afterEach(async () => {
  await sys?.close();
  sys = undefined;
  await proxy?.close();
  proxy = undefined;
});

/** Attempt jobs BullMQ was given on the `render` queue (its `added` events). */
async function bullAdds(client: Redis, prefix: string): Promise<number> {
  const entries = await client.xrange(`${prefix}:render:events`, "-", "+");
  return entries.filter(([, fields]) => fields[0] === "event" && fields[1] === "added").length;
}

async function jobStatus(s: TestSystem, token: string, id: string) {
  const res = await s.call(`/jobs/${id}?redirect=false`, { token });
  return (await res.json()) as { status: string; position?: number; attempts?: number };
}

describe("chained attempts", () => {
  it("runs a queue of 10 jobs on 2 slots with 2 attempt jobs on the BullMQ queue", async () => {
    // A job takes 4 steps × 300 ms: all ten are queued long before the first one ends (on a loaded
    // machine too: a chain that finds the queue empty ends, and the next job takes a third attempt job).
    sys = await startSystem({ env: { WORKER_CONCURRENCY: "2", SIM_STEP_MS: "300" } });
    const s = sys;
    const token = await s.token("chain");
    const ids: string[] = [];
    for (let i = 0; i < 10; i++) ids.push(await queueJob(s, token, { ...FLUX_SCHNELL_512, prompt: `p${i}` }));
    await waitFor(async () => {
      for (const id of ids) if ((await jobStatus(s, token, id)).status !== "complete") return false;
      return true;
    }, 30_000);
    const stats = s.sim.stats();
    for (const id of ids) expect(stats.calls_by_id[id]).toBe(1);
    // The two slots took their first attempts from the queue; every later one was chained.
    expect(await bullAdds(s.redis.client, s.redis.prefix)).toBe(2);
    expect(stats.peak_active).toBeLessThanOrEqual(2);
  });

  it("hands back a chained attempt started while the worker stops", async () => {
    proxy = await startFaultProxy(redisUrl());
    sys = await startSystem({
      env: { REDIS_URL: proxy.url, WORKER_CONCURRENCY: "1", SIM_STEP_MS: "100" },
    });
    const s = sys;
    const admin = s.redis.client;
    const token = await s.token("chain");
    const first = await queueJob(s, token, { ...FLUX_SCHNELL_512, prompt: "first" });
    const second = await queueJob(s, token, { ...FLUX_SCHNELL_512, prompt: "second" });
    await waitFor(async () => s.sim.stats().active === 1);
    // Hold the first attempt's settle (the only call carrying outputs), which carries the offer that
    // starts the second job, on its way to Redis until the worker has begun to stop.
    const settle = proxy.holdOn('"outputs":[');
    await settle.started;
    const stopped = s.worker!.stop(5_000);
    settle.release();
    await stopped;

    expect((await jobStatus(s, token, first)).status).toBe("complete");
    const back = await jobStatus(s, token, second);
    expect(back.status).toBe("queued");
    expect(back.position).toBe(0);
    expect(s.sim.stats().calls_by_id[second]).toBeUndefined();
    // It was started (by the settle) and handed back unbegun: one attempt-log entry closed as
    // "busy", and no attempt spent.
    const jobKey = createKeys(s.redis.prefix).job(second);
    expect(await admin.hget(jobKey, "status")).toBe("queued");
    const log = JSON.parse((await admin.hget(jobKey, "alog")) ?? "[]") as { outcome?: string }[];
    expect(log.map((e) => e.outcome)).toEqual(["busy"]);
    expect(await admin.hget(jobKey, "spent")).toBeOneOf([null, "0"]);
  });
});
