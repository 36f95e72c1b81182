// Idempotency reservations name their job and are settled, never released while that job may still
// come to exist: a reservation past its hold is replayed (its job exists) or voided and taken over
// (a late admit of the voided id stores nothing). Each step is one atomic script.
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { createIdempotencyStore, type IdempotencyStore } from "../../src/queues/idempotency-store.js";
import { createScheduler, type AdmitInput, type Scheduler } from "../../src/queues/scheduler.js";
import { closeRedis, createRedis, waitReady } from "../../src/infra/redis.js";
import { redisUrl, testRedis, type TestRedis } from "../helpers/redis.js";
import { startFaultProxy } from "../helpers/tcp-proxy.js";
import { createKeys } from "../../src/queues/keys.js";

let r: TestRedis;
let now: number;
let store: IdempotencyStore;
let scheduler: Scheduler;

beforeEach(() => {
  r = testRedis();
  now = 1_700_000_000_000;
  store = createIdempotencyStore({ redis: r.client, prefix: r.prefix, clock: () => now });
  scheduler = createScheduler({
    redis: r.client,
    prefix: r.prefix,
    clock: () => now,
    leaseTtlMs: 30_000,
    maxAttempts: 3,
    retentionS: 3600,
    retentionCount: 1000,
  });
});
afterEach(async () => {
  await r.cleanup();
});

const admitInput = (id: string, customer = "c"): AdmitInput => ({
  id,
  route: "flux/schnell",
  priority: "normal",
  fields: { cust: customer, mod: "image", fam: "flux", mdl: "schnell", task: "t2i", seed: "1" },
  request: "{}",
  serviceMs: 1000,
  capacity: 1,
  now,
});

describe("idempotency reservation", () => {
  it("reserves, then answers pending until its hold ends, and mismatch for another body", async () => {
    expect(await store.begin("c", "k", "fp", "j_first000000000000000", now + 5000)).toEqual({
      kind: "reserved",
    });
    expect(await store.begin("c", "k", "fp", "j_second00000000000000", now + 5000)).toEqual({
      kind: "pending",
      until: now + 5000,
    });
    expect(await store.begin("c", "k", "other", "j_third000000000000000", now + 5000)).toEqual({
      kind: "mismatch",
    });
  });

  it("replays a completed response for a day", async () => {
    await store.begin("c", "k", "fp", "j_first000000000000000", now + 5000);
    const response = { status: 202, body: { id: "j_first000000000000000" }, headers: { location: "/x" } };
    await store.complete("c", "k", "fp", response);
    now += 3_600_000;
    expect(await store.begin("c", "k", "fp", "j_again000000000000000", now + 5000)).toEqual({
      kind: "replay",
      response,
    });
    const [key] = await r.client.keys(createKeys(r.prefix).idempotency("*", "*"));
    expect(await r.client.ttl(key!)).toBeGreaterThan(86_000);
  });

  it("a pending reservation lives a day, not a minute: a lost answer never frees the key", async () => {
    await store.begin("c", "k", "fp", "j_first000000000000000", now + 5000);
    const [key] = await r.client.keys(createKeys(r.prefix).idempotency("*", "*"));
    expect(await r.client.ttl(key!)).toBeGreaterThan(86_000);
  });

  it("past its hold, a reservation whose job exists answers with that job", async () => {
    const first = "j_first000000000000000";
    await store.begin("c", "k", "fp", first, now + 5000);
    expect((await scheduler.admit(admitInput(first))).admitted).toBe(true);
    now += 6000;
    expect(await store.begin("c", "k", "fp", "j_retry000000000000000", now + 5000)).toEqual({
      kind: "admitted",
      jobId: first,
    });
  });

  it("past its hold, a reservation whose job does not exist is voided and taken over", async () => {
    const first = "j_first000000000000000";
    const retry = "j_retry000000000000000";
    await store.begin("c", "k", "fp", first, now + 5000);
    now += 6000;
    expect(await store.begin("c", "k", "fp", retry, now + 5000)).toEqual({ kind: "reserved" });
    // the first request's admit, arriving late, stores nothing
    expect(await scheduler.admit(admitInput(first))).toEqual({ admitted: false, reason: "voided" });
    expect(await r.client.hexists(createKeys(r.prefix).job(first), "status")).toBe(0);
    // and the key now belongs to the retry
    expect(await store.begin("c", "k", "fp", "j_third000000000000000", now + 5000)).toEqual({
      kind: "pending",
      until: now + 5000,
    });
  });

  it("release frees only the reservation of that admission", async () => {
    await store.begin("c", "k", "fp", "j_first000000000000000", now + 5000);
    expect(await store.release("c", "k", "j_other000000000000000")).toBe(false);
    expect(await store.release("c", "k", "j_first000000000000000")).toBe(true);
    expect(await store.begin("c", "k", "another body", "j_next0000000000000000", now + 5000)).toEqual({
      kind: "reserved",
    });
    await store.complete("c", "k", "another body", { status: 202, body: {}, headers: {} });
    expect(await store.release("c", "k", "j_next0000000000000000")).toBe(false);
  });
});

describe("settling an admission whose reply was lost", () => {
  it("finds the job when the admit ran", async () => {
    await scheduler.admit(admitInput("j_ran00000000000000000"));
    expect(await scheduler.resolveAdmission("j_ran00000000000000000", "c")).toEqual({
      admitted: true,
      position: 0,
    });
  });

  it("voids the id when it did not, so a late admit stores nothing", async () => {
    expect(await scheduler.resolveAdmission("j_late0000000000000000", "c")).toEqual({
      admitted: false,
      reason: "voided",
    });
    expect(await scheduler.admit(admitInput("j_late0000000000000000"))).toEqual({
      admitted: false,
      reason: "voided",
    });
    expect(await r.client.zcard(createKeys(r.prefix).queue)).toBe(0);
  });

  it("does not claim another customer's job", async () => {
    await scheduler.admit(admitInput("j_theirs00000000000000", "someone-else"));
    expect(await scheduler.resolveAdmission("j_theirs00000000000000", "c")).toEqual({
      admitted: false,
      reason: "foreign",
    });
  });
});

describe("an admit call whose connection is cut", () => {
  // ioredis resends calls left unanswered on a cut connection once it reconnects, so the admit may
  // still run after its timeout: whatever happens, the answer must agree with what Redis holds.
  it("is answered the way Redis has it: admitted with a job, or not with a void marker", async () => {
    const proxy = await startFaultProxy(redisUrl());
    const client = createRedis({ kind: "url", url: proxy.url }, "api", "test-lossy", {
      commandTimeoutMs: 300,
    });
    try {
      await waitReady(client, 5000);
      const lossy = createScheduler({
        redis: client,
        prefix: r.prefix,
        clock: () => now,
        leaseTtlMs: 30_000,
        maxAttempts: 3,
        retentionS: 3600,
        retentionCount: 1000,
        admitResolveMs: 5000,
      });
      expect((await lossy.admit(admitInput("j_warmup00000000000000"))).admitted).toBe(true);
      proxy.dropOn("j_dropped0000000000000", 500);
      const result = await lossy.admit(admitInput("j_dropped0000000000000"));
      await proxy.stalled();
      // a resent admit that is still on its way lands before the next command on the new connection
      await lossy.resolvePending();
      const exists = await r.client.hexists(createKeys(r.prefix).job("j_dropped0000000000000"), "status");
      if (result.admitted) expect(exists).toBe(1);
      else {
        expect(result).toEqual({ admitted: false, reason: "lost" });
        expect(exists).toBe(0);
        expect(await r.client.hget(createKeys(r.prefix).job("j_dropped0000000000000"), "void")).toBe("1");
      }
    } finally {
      await closeRedis(client);
      await proxy.close();
    }
  });
});
