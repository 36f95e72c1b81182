// A process takes its units from Redis in blocks while the window has plenty left (one call per
// block), one at a time near the limit: never more than the limit in a window, across processes.
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { Redis } from "ioredis";
import { createRateLimitStore } from "../../src/queues/rate-limit-store.js";
import { createKeys } from "../../src/queues/keys.js";
import { redisUrl, testRedis, type TestRedis } from "../helpers/redis.js";

let r: TestRedis;
let other: Redis;

beforeEach(() => {
  r = testRedis();
  other = new Redis(redisUrl(), { maxRetriesPerRequest: null });
});
afterEach(async () => {
  await r.cleanup();
  other.disconnect();
});

/** `client` with a count of the library's one command (rate-limiter-flexible defines `rlflxIncr`). */
function counted(client: Redis): { client: Redis; calls: () => number } {
  let calls = 0;
  const proxy = new Proxy(client, {
    get(target, name, receiver) {
      const value: unknown = Reflect.get(target, name, receiver);
      if (name !== "rlflxIncr" || typeof value !== "function") return value;
      return (...args: unknown[]) => {
        calls += 1;
        return (value as (...a: unknown[]) => unknown).apply(target, args);
      };
    },
  });
  return { client: proxy, calls: () => calls };
}

describe("rate limit blocks", () => {
  it("far from the limit, takes units in blocks: one Redis call per block, not per unit", async () => {
    const c = counted(r.client);
    const quota = createRateLimitStore({ redis: c.client, prefix: r.prefix }).quota("submits", 100_000, 60);
    for (let i = 0; i < 500; i++) expect((await quota.take("c1")).allowed).toBe(true);
    expect(c.calls()).toBeGreaterThan(0);
    expect(c.calls()).toBeLessThanOrEqual(10);
    const inRedis = Number(await r.client.get(createKeys(r.prefix).rateLimit("submits", "c1")));
    // every unit handed out was counted, at most one block (≤ 100) ahead
    expect(inRedis).toBeGreaterThanOrEqual(500);
    expect(inRedis).toBeLessThanOrEqual(600);
  });

  it("with many takes in flight, one process hands out the whole quota, no unit lost", async () => {
    const quota = createRateLimitStore({ redis: r.client, prefix: r.prefix }).quota("submits", 1200, 60);
    let allowed = 0;
    for (let sent = 0; sent < 1300; sent += 32) {
      const batch = await Promise.all(Array.from({ length: 32 }, () => quota.take("c3")));
      allowed += batch.filter((t) => t.allowed).length;
    }
    expect(allowed).toBe(1200);
  });

  it("two processes sharing a small quota hand out exactly the limit", async () => {
    const a = createRateLimitStore({ redis: r.client, prefix: r.prefix }).quota("submits", 50, 60);
    const b = createRateLimitStore({ redis: other, prefix: r.prefix }).quota("submits", 50, 60);
    const takes = await Promise.all(Array.from({ length: 80 }, (_, i) => (i % 2 ? a : b).take("c2")));
    let allowed = takes.filter((t) => t.allowed).length;
    // sequential takes after the storm: whatever either process still holds is handed out, no more
    for (let i = 0; i < 20; i++) if ((await (i % 2 ? a : b).take("c2")).allowed) allowed += 1;
    expect(allowed).toBeLessThanOrEqual(50);
    expect(allowed).toBeGreaterThanOrEqual(47);
  });
});
