// The sync route's answers once its job exists: X-Job-Id on errors too (the error handler builds a
// fresh response, so the header must travel in the error), also when Redis goes away during the wait,
// and a wait that adds one abort listener however many events the job records.
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createHash } from "node:crypto";
import { Redis } from "ioredis";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { scriptSources } from "../../src/queues/scripts.js";
import { spawnRedis } from "../helpers/processes.js";
import { startSystem, waitFor, type TestSystem } from "../helpers/system.js";

let sys: TestSystem;
let t: string;

beforeAll(async () => {
  // One attempt: a failing backend ends the job in error at once.
  sys = await startSystem({ env: { JOB_ATTEMPTS: "1" } });
  t = await sys.token("sync-customer");
});
afterAll(async () => {
  await sys?.close();
});

/**
 * Until the API counts a healthy backend and the worker's slots: the sync route admits only what can
 * start now (a loaded machine may not be there yet, and a 503 would come first).
 */
async function untilSyncReady(sys: TestSystem): Promise<void> {
  const admin = await sys.token("ops", { admin: true });
  await waitFor(async () => {
    const ready = (await (await sys.call("/ready", { token: admin })).json()) as {
      backends?: { healthy: boolean }[];
      workers?: unknown[];
    };
    return (ready.backends ?? []).some((b) => b.healthy) && (ready.workers ?? []).length > 0;
  });
}

describe("sync route", () => {
  it("carries X-Job-Id on the problem document of a job that failed", async () => {
    sys.sim.setConfig({ failRate: 1 });
    try {
      const res = await sys.call("/image/flux/schnell/t2i?format=512", {
        method: "POST",
        token: t,
        body: JSON.stringify({ prompt: "fails on the GPU" }),
      });
      const body = (await res.json()) as { error: string; details: { job_id: string } };
      expect(res.status, JSON.stringify(body)).toBe(503);
      expect(body.error).toBe("unavailable");
      expect(res.headers.get("retry-after")).toBe("1");
      expect(res.headers.get("x-job-id")).toMatch(/^j_[A-Za-z0-9]{20,}$/);
      expect(res.headers.get("x-job-id")).toBe(body.details.job_id);
      expect(res.headers.get("content-type")).toMatch(/^application\/problem\+json/);
    } finally {
      sys.sim.setConfig({ failRate: 0 });
    }
  });

  it("waits for a job with many events without piling up abort listeners", async () => {
    const warnings: string[] = [];
    const onWarning = (w: Error) => warnings.push(`${w.name}: ${w.message}`);
    process.on("warning", onWarning);
    sys.sim.setConfig({ stepMs: 60 });
    try {
      // 50 steps of 60 ms on a streaming backend: a progress event every 200 ms for 3 s, each a wake-up.
      const res = await sys.call("/image/flux/schnell/t2i?format=512", {
        method: "POST",
        token: t,
        body: JSON.stringify({ prompt: "many small steps", steps: 50 }),
      });
      expect(res.status).toBe(200);
      await res.arrayBuffer();
      const events = await sys.call(`/jobs/${res.headers.get("x-job-id")!}/events`, { token: t });
      const text = await events.text();
      // a sync job's progress is recorded every 200 ms from 200 ms into the attempt on (no last step)
      expect((text.match(/event: progress/g) ?? []).length).toBeGreaterThanOrEqual(10);
      await new Promise((r) => setImmediate(r));
      expect(warnings.filter((w) => w.includes("MaxListenersExceeded"))).toEqual([]);
    } finally {
      process.off("warning", onWarning);
      sys.sim.setConfig({ stepMs: 2 });
    }
  });

  it("names the job (X-Job-Id, Location) when Redis goes away during the wait", async () => {
    const dir = mkdtempSync(join(tmpdir(), "rg-sync-redis-"));
    const server = await spawnRedis(dir);
    // steps of 2 s: the attempt is still running when the test, on a loaded machine, gets to see it
    const own = await startSystem({ env: { REDIS_URL: server.url, SIM_STEP_MS: "2000" } });
    try {
      const token = await own.token("sync-outage");
      await untilSyncReady(own);
      const pending = own.call("/image/flux/schnell/t2i?format=512", {
        method: "POST",
        token,
        body: JSON.stringify({ prompt: "Redis leaves mid-wait" }),
      });
      // The job is admitted and its attempt runs on the backend: now take Redis away.
      let early: Response | undefined;
      void pending.then((r) => (early = r));
      await waitFor(async () => {
        if (early !== undefined) throw new Error(`answered before the attempt ran: ${early.status}`);
        return own.sim.stats().active === 1;
      });
      await server.kill("SIGKILL");
      const res = await pending;
      const body = (await res.json()) as { error: string };
      expect(res.status, JSON.stringify(body)).toBe(503);
      expect(body.error).toBe("unavailable");
      expect(res.headers.get("retry-after")).toBe("1");
      const id = res.headers.get("x-job-id");
      expect(id).toMatch(/^j_[A-Za-z0-9]{20,}$/);
      expect(res.headers.get("location")).toBe(`${own.url}/jobs/${id}`);
    } finally {
      // Back (empty) so the worker, which rides outages out, can settle and stop.
      await server.restart();
      await own.close();
      await server.stop().catch(() => undefined);
      rmSync(dir, { recursive: true, force: true });
    }
  }, 60_000);

  it("in one process: admits, dispatches and settles once, and never reads the job", async () => {
    // The wait watches the job from before its admission, takes the settle's record from the worker
    // beside it, and the worker's pass starts on the API's word, not a second time on the wake
    // message. Script calls are counted from the SLOWLOG of a redis-server of the test's own.
    const dir = mkdtempSync(join(tmpdir(), "rg-sync-calls-"));
    const server = await spawnRedis(dir);
    const own = await startSystem({ env: { REDIS_URL: server.url } });
    const redis = new Redis(server.url, { maxRetriesPerRequest: null });
    try {
      const token = await own.token("sync-calls");
      await untilSyncReady(own);
      const names = new Map(
        [...scriptSources()].map(([name, src]) => [createHash("sha1").update(src).digest("hex"), name]),
      );
      const calls = async () => {
        const log = (await redis.call("SLOWLOG", "GET", "-1")) as [number, number, number, string[]][];
        return log
          .filter(([, , , argv]) => argv[0]?.toLowerCase() === "evalsha")
          .map(([, , , argv]) => names.get(argv[1]!) ?? "other")
          .sort();
      };
      await redis.config("SET", "slowlog-max-len", "10000");
      await redis.config("SET", "slowlog-log-slower-than", "0");
      // the first call warms the route; the second is counted
      for (const prompt of ["warm", "counted"]) {
        await redis.call("SLOWLOG", "RESET");
        const res = await own.call("/image/flux/schnell/t2i?format=512", {
          method: "POST",
          token,
          body: JSON.stringify({ prompt }),
        });
        expect(res.status).toBe(200);
        await res.arrayBuffer();
      }
      const counted = await calls();
      expect(counted.filter((n) => n === "read")).toEqual([]);
      expect(counted.filter((n) => n === "admit" || n === "finish")).toEqual(["admit", "finish"]);
      // one pass for the job (a periodic or housekeeping pass may add another, never one per message)
      expect(counted.filter((n) => n === "dispatch").length).toBeLessThanOrEqual(2);
    } finally {
      redis.disconnect();
      await own.close();
      await server.stop().catch(() => undefined);
      rmSync(dir, { recursive: true, force: true });
    }
  }, 60_000);
});
