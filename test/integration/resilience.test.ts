// Backends that fail, hang, reject, go away and get cancelled (issue 3): not one job lost, stuck
// or run twice, and backend slots always return to zero.
import { afterEach, describe, expect, it } from "vitest";
import type { BackendConfig } from "../../src/config/backends.js";
import { createJobStore } from "../../src/queues/job-store.js";
import { redisUrl } from "../helpers/redis.js";
import {
  FLUX_SCHNELL_512,
  queueJob,
  readSse,
  setSimDown,
  startSystem,
  waitFor,
  type TestSystem,
} from "../helpers/system.js";
import { startFaultProxy, type FaultProxy } from "../helpers/tcp-proxy.js";

let sys: TestSystem | undefined;
let proxy: FaultProxy | undefined;
afterEach(async () => {
  await sys?.close();
  sys = undefined;
  await proxy?.close();
  proxy = undefined;
});

function oneBackend(overrides: Partial<BackendConfig> = {}) {
  return (simUrl: string): BackendConfig[] => [
    {
      id: "gpu-a",
      url: simUrl,
      protocol: "kserve-v2",
      engine: "nunchaku",
      capacity: 4,
      models: ["*"],
      streaming: false,
      timeout_ms: 120_000,
      timeouts: {},
      ...overrides,
    },
  ];
}

const submit = (s: TestSystem, token: string, body: Record<string, unknown>) =>
  queueJob(s, token, { ...FLUX_SCHNELL_512, ...body });

async function job(s: TestSystem, token: string, id: string): Promise<Record<string, any>> {
  const res = await s.call(`/jobs/${id}?redirect=false`, { token });
  return (await res.json()) as Record<string, any>;
}

async function settled(s: TestSystem, token: string, id: string, timeoutMs = 20_000) {
  return waitFor(async () => {
    const j = await job(s, token, id);
    return ["complete", "error", "cancelled"].includes(j.status as string) ? j : undefined;
  }, timeoutMs);
}

/** Every backend slot lease is back: nothing dispatched, nothing running. */
async function expectLeasesZero(s: TestSystem) {
  const store = createJobStore(s.redis.client, s.redis.prefix);
  await waitFor(async () => {
    const t = await store.totals();
    return t.running === 0;
  }, 10_000);
  expect(s.sim.stats().active).toBe(0);
}

describe("failure policy", () => {
  it("retries 5xx with backoff until the backend recovers; no job lost, each attempt recorded", async () => {
    sys = await startSystem({
      env: { BACKOFF_BASE_MS: "50", BACKOFF_MAX_MS: "200", JOB_ATTEMPTS: "10", BREAKER_VOLUME: "1000" },
      backends: oneBackend(),
    });
    const t = await sys.token("c1");
    sys.sim.setConfig({ failRate: 0.5 });
    const ids = await Promise.all(
      Array.from({ length: 12 }, (_, i) => submit(sys!, t, { prompt: `half fail ${i}` })),
    );
    await waitFor(async () => sys!.sim.stats().failed >= 3);
    sys.sim.setConfig({ failRate: 0 });
    const jobs = await Promise.all(ids.map((id) => settled(sys!, t, id)));
    expect(jobs.map((j) => j.status)).toEqual(ids.map(() => "complete"));
    const retried = jobs.filter((j) => (j.attempts as number) > 1);
    expect(retried.length).toBeGreaterThan(0);
    for (const j of retried) {
      const outcomes = (j.attempt_log as { outcome: string }[]).map((a) => a.outcome);
      expect(outcomes.at(-1)).toBe("complete");
      expect(outcomes.slice(0, -1).every((o) => o === "retry")).toBe(true);
    }
    await expectLeasesZero(sys);
  });

  it("aborts a hung call at the execution timeout, retries, and ends with the last cause", async () => {
    sys = await startSystem({
      env: { BACKOFF_BASE_MS: "20", JOB_ATTEMPTS: "2" },
      backends: oneBackend({ timeout_ms: 400 }),
    });
    const t = await sys.token("c1");
    const id = await submit(sys, t, { prompt: "[sim:hang] forever" });
    const j = await settled(sys, t, id);
    expect(j.status).toBe("error");
    expect(j.error).toMatchObject({ code: "backend_timeout", retriable: true });
    expect(j.attempts).toBe(2);
    expect(sys.sim.stats().calls_by_id[id]).toBe(2);
    await waitFor(async () => sys!.sim.stats().aborted >= 2);
    await expectLeasesZero(sys);
  });

  it("fails a backend 400 at once, without retry, and the breaker stays closed", async () => {
    sys = await startSystem({
      env: { BREAKER_VOLUME: "2", BREAKER_ERROR_PERCENT: "10" },
      backends: oneBackend(),
    });
    const t = await sys.token("c1");
    const bad = await Promise.all([1, 2, 3, 4].map((i) => submit(sys!, t, { prompt: `[sim:400] bad ${i}` })));
    for (const id of bad) {
      const j = await settled(sys, t, id);
      expect(j.status).toBe("error");
      expect(j.error).toMatchObject({ code: "invalid_request", retriable: false });
      expect(j.attempts).toBe(1);
      expect(sys.sim.stats().calls_by_id[id]).toBe(1);
    }
    const good = await submit(sys, t, { prompt: "a good one" });
    expect((await settled(sys, t, good)).status).toBe("complete");
    const admin = await sys.token("ops", { admin: true });
    const ready = (await (await sys.call("/ready", { token: admin })).json()) as {
      backends: { breakers: Record<string, string> }[];
    };
    expect(Object.values(ready.backends[0]!.breakers)).toEqual(["closed"]);
    await expectLeasesZero(sys);
  });

  it("opens the breaker on repeated failures and makes jobs wait (no attempt spent) instead of failing", async () => {
    sys = await startSystem({
      env: {
        BREAKER_VOLUME: "3",
        BREAKER_ERROR_PERCENT: "50",
        BREAKER_RESET_MS: "2000",
        BACKOFF_BASE_MS: "10",
        BACKOFF_MAX_MS: "20",
        JOB_ATTEMPTS: "50",
        BUSY_COOLDOWN_MS: "50",
      },
      backends: oneBackend({ capacity: 2 }),
    });
    const t = await sys.token("c1");
    sys.sim.setConfig({ failRate: 1 });
    const ids = await Promise.all(
      Array.from({ length: 6 }, (_, i) => submit(sys!, t, { prompt: `breaker ${i}` })),
    );
    const admin = await sys.token("ops", { admin: true });
    await waitFor(async () => {
      const ready = (await (await sys!.call("/ready", { token: admin })).json()) as {
        backends?: { breakers: Record<string, string> }[];
      };
      return Object.values(ready.backends?.[0]?.breakers ?? {}).includes("open");
    });
    // Nothing can take work while it is open: GET /queue (the same capacity snapshot) gives no ETAs.
    const queue = (await (await sys.call("/queue", { token: t })).json()) as {
      eta_seconds: Record<string, number>;
    };
    expect(queue.eta_seconds).toEqual({});
    // While open, the backend is left alone: no new calls fail, and the jobs wait in the queue.
    await waitFor(async () => sys!.sim.stats().active === 0);
    const failedWhenOpened = sys.sim.stats().failed;
    await new Promise((r) => setTimeout(r, 300));
    expect(sys.sim.stats().failed).toBe(failedWhenOpened);
    const waiting = await Promise.all(ids.map((id) => job(sys!, t, id)));
    expect(waiting.filter((j) => j.status === "error")).toEqual([]);
    sys.sim.setConfig({ failRate: 0 });
    const jobs = await Promise.all(ids.map((id) => settled(sys!, t, id)));
    expect(jobs.every((j) => j.status === "complete")).toBe(true);
    await expectLeasesZero(sys);
  });

  it("keeps every job queued while all backends are down, and completes them all when they return", async () => {
    sys = await startSystem({
      env: { HEALTH_INTERVAL_MS: "150", BUSY_COOLDOWN_MS: "50", JOB_ATTEMPTS: "2" },
      backends: oneBackend(),
    });
    const t = await sys.token("c1");
    await setSimDown(sys, true);
    const ids = await Promise.all(
      Array.from({ length: 8 }, (_, i) => submit(sys!, t, { prompt: `outage ${i}` })),
    );
    await new Promise((r) => setTimeout(r, 1_500));
    for (const id of ids) {
      const j = await job(sys, t, id);
      expect(j.status).toBe("queued");
      expect(typeof j.position).toBe("number");
    }
    sys.sim.setConfig({ down: false });
    const jobs = await Promise.all(ids.map((id) => settled(sys!, t, id)));
    expect(jobs.map((j) => j.status)).toEqual(ids.map(() => "complete"));
    await expectLeasesZero(sys);
  });
});

describe("deadlines and cancellation", () => {
  it("cancels a job not started within its ttl and never sends it to a backend", async () => {
    sys = await startSystem({
      env: { MIN_TTL_S: "1", STALLED_INTERVAL_MS: "200" },
      backends: oneBackend({ capacity: 1 }),
    });
    const t = await sys.token("c1");
    sys.sim.setConfig({ stepMs: 400 });
    const blocker = await submit(sys, t, { prompt: "blocker", steps: 10 });
    const late = await submit(sys, t, { prompt: "late", ttl: 1 });
    const j = await settled(sys, t, late);
    expect(j.status).toBe("cancelled");
    expect(j.error).toMatchObject({ code: "ttl_expired" });
    expect(sys.sim.stats().calls_by_id[late]).toBeUndefined();
    await sys.call(`/jobs/${blocker}`, { method: "DELETE", token: t });
    await expectLeasesZero(sys);
  });

  it("cancels a job whose ttl passes while every backend stays busy (the expiry sweep, not dispatch)", async () => {
    // Dispatch cancels an expired job it comes across too, but only once a slot is free: here the
    // only slot is held by a call that hangs until it is cancelled, so only the sweep can expire it.
    sys = await startSystem({
      env: { MIN_TTL_S: "1", STALLED_INTERVAL_MS: "200" },
      backends: oneBackend({ capacity: 1 }),
    });
    const t = await sys.token("c1");
    const blocker = await submit(sys, t, { prompt: "[sim:hang] blocker" });
    await waitFor(async () => sys!.sim.stats().hung === 1);
    const late = await submit(sys, t, { prompt: "late", ttl: 1 });
    const j = await settled(sys, t, late);
    expect(j.status).toBe("cancelled");
    expect(j.error).toMatchObject({ code: "ttl_expired" });
    // The slot stayed busy all along, and the late job never reached the backend.
    expect((await job(sys, t, blocker)).status).toBe("running");
    expect(sys.sim.stats()).toMatchObject({ active: 1, calls: 1 });
    expect(sys.sim.stats().calls_by_id[late]).toBeUndefined();
    await sys.call(`/jobs/${blocker}`, { method: "DELETE", token: t });
    await expectLeasesZero(sys);
  });

  it("aborts a running job's backend call on the cancel channel, with lease renewal held back", async () => {
    // Lease renewal tells a worker about a cancel too (the fallback should the message be lost).
    // Here the worker's script connection, which renewal uses, is held at a proxy from before the
    // DELETE until the call is aborted: only the cancel channel (the worker's subscriber connection)
    // can have told it.
    proxy = await startFaultProxy(redisUrl());
    sys = await startSystem({ env: { REDIS_URL: proxy.url }, backends: oneBackend() });
    const t = await sys.token("c1");
    const id = await submit(sys, t, { prompt: "[sim:hang] cancel me" });
    await waitFor(async () => sys!.sim.stats().hung === 1);
    const renewal = proxy.holdConnections("rg-worker");
    try {
      expect(renewal.connections).toBeGreaterThan(0);
      expect((await sys.call(`/jobs/${id}`, { method: "DELETE", token: t })).status).toBe(202);
      await waitFor(async () => sys!.sim.stats().aborted === 1);
      expect((await job(sys, t, id)).status).toBe("cancelled");
    } finally {
      renewal.release();
    }
    await expectLeasesZero(sys);
  });

  it("aborts the backend call of a running async job within a second of DELETE", async () => {
    sys = await startSystem({ backends: oneBackend({ streaming: true }) });
    const t = await sys.token("c1");
    sys.sim.setConfig({ stepMs: 500 });
    const id = await submit(sys, t, { prompt: "long", steps: 20 });
    const sse = await sys.call(`/jobs/${id}/events`, { token: t });
    await readSse(sse, (e) => e.event === "started");
    await waitFor(async () => sys!.sim.stats().active === 1);
    const t0 = Date.now();
    const del = await sys.call(`/jobs/${id}`, { method: "DELETE", token: t });
    expect(del.status).toBe(202);
    await waitFor(async () => sys!.sim.stats().active === 0, 5_000, 10);
    expect(Date.now() - t0).toBeLessThan(1_000);
    const j = await job(sys, t, id);
    expect(j.status).toBe("cancelled");
    expect(j).not.toHaveProperty("output");
    expect(sys.sim.stats().aborted).toBe(1);
    expect((await sys.call(`/jobs/${id}`, { method: "DELETE", token: t })).status).toBe(409);
    await expectLeasesZero(sys);
  });

  it("aborts a running sync job cancelled from elsewhere; the waiting client gets 409", async () => {
    sys = await startSystem({ backends: oneBackend() });
    const t = await sys.token("c1");
    sys.sim.setConfig({ stepMs: 500 });
    const pending = sys.call("/image/flux/schnell/t2i?format=512", {
      method: "POST",
      token: t,
      body: JSON.stringify({ prompt: "long sync", steps: 20 }),
    });
    const id = await waitFor(async () => Object.keys(sys!.sim.stats().calls_by_id)[0]);
    const t0 = Date.now();
    expect((await sys.call(`/jobs/${id}`, { method: "DELETE", token: t })).status).toBe(202);
    await waitFor(async () => sys!.sim.stats().active === 0, 5_000, 10);
    expect(Date.now() - t0).toBeLessThan(1_000);
    const res = await pending;
    expect(res.status).toBe(409);
    expect(((await res.json()) as { details: { code: string } }).details.code).toBe("cancelled");
    await expectLeasesZero(sys);
  });

  it("cancels a queued job with 204 and never runs it", async () => {
    sys = await startSystem({ backends: oneBackend({ capacity: 1 }) });
    const t = await sys.token("c1");
    sys.sim.setConfig({ stepMs: 300 });
    const a = await submit(sys, t, { prompt: "first", steps: 5 });
    const b = await submit(sys, t, { prompt: "second" });
    const c = await submit(sys, t, { prompt: "third" });
    await waitFor(async () => (await job(sys!, t, a)).status === "running");
    const before = (await job(sys, t, c)).position as number;
    expect((await sys.call(`/jobs/${b}`, { method: "DELETE", token: t })).status).toBe(204);
    expect((await job(sys, t, c)).position).toBe(before - 1);
    expect((await settled(sys, t, c)).status).toBe("complete");
    expect(sys.sim.stats().calls_by_id[b]).toBeUndefined();
    await expectLeasesZero(sys);
  });
});

describe("sync admission", () => {
  it("answers 503 capacity_exhausted when nothing can start the job within the budget", async () => {
    sys = await startSystem({ env: { DEFAULT_SERVICE_MS: "5000" }, backends: oneBackend({ capacity: 1 }) });
    const t = await sys.token("c1");
    sys.sim.setConfig({ stepMs: 300 });
    await submit(sys, t, { prompt: "occupant", steps: 10 });
    await submit(sys, t, { prompt: "waiting 1", steps: 10 });
    const res = await sys.call("/image/flux/schnell/t2i?format=512", {
      method: "POST",
      token: t,
      headers: { prefer: "wait=1" },
      body: JSON.stringify({ prompt: "now please" }),
    });
    expect(res.status).toBe(503);
    expect(res.headers.get("content-type")).toContain("application/problem+json");
    expect(res.headers.get("retry-after")).toMatch(/^\d+$/);
    expect(res.headers.get("link")).toBe('</queue>; rel="alternate"');
    expect(((await res.json()) as { error: string }).error).toBe("capacity_exhausted");
  });
});
