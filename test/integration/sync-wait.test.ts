// The sync route's answers once its job exists: X-Job-Id on errors too (the error handler builds a
// fresh response, so the header must travel in the error), and a wait that adds one abort listener
// however many events the job records.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startSystem, type TestSystem } from "../helpers/system.js";

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
      expect((text.match(/event: progress/g) ?? []).length).toBeGreaterThan(12);
      await new Promise((r) => setImmediate(r));
      expect(warnings.filter((w) => w.includes("MaxListenersExceeded"))).toEqual([]);
    } finally {
      process.off("warning", onWarning);
      sys.sim.setConfig({ stepMs: 2 });
    }
  });
});
