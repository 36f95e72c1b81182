// GET /ready for an operator: the backends' leases and the queue totals come from one read, so the
// per-backend counts add up to `running`.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { FLUX_SCHNELL_512, queueJob, startSystem, waitFor, type TestSystem } from "../helpers/system.js";

let sys: TestSystem;

beforeAll(async () => {
  sys = await startSystem({ env: { SIM_STEP_MS: "300" } });
});
afterAll(async () => {
  await sys?.close();
});

interface Ready {
  status: string;
  backends: { id: string; leases: number }[];
  queue: Record<string, unknown> & { running: number; depth: Record<string, number> };
}

describe("GET /ready (admin)", () => {
  it("reports running attempts per backend that add up to the queue's running count", async () => {
    const t = await sys.token("ready-customer");
    const admin = await sys.token("ops", { admin: true });
    await queueJob(sys, t, { ...FLUX_SCHNELL_512, prompt: "held for a while" });
    const ready = await waitFor(async () => {
      const body = (await (await sys.call("/ready", { token: admin })).json()) as Ready;
      return body.queue.running === 1 ? body : undefined;
    });
    expect(ready.status).toBe("ready");
    expect(ready.backends.reduce((s, b) => s + b.leases, 0)).toBe(1);
    expect(Object.keys(ready.queue).sort()).toEqual(["depth", "running"]);
  });
});
