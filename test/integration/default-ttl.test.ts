// A job sent without `ttl` still expires if it never starts: it gets DEFAULT_TTL_S (86400 s, the
// highest ttl; lowered here) and ends `cancelled` with `ttl_expired`, never sent to a backend.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { FLUX_SCHNELL_512, queueJob, startSystem, waitFor, type TestSystem } from "../helpers/system.js";

// No worker: nothing ever starts the job.
let sys: TestSystem;
beforeAll(async () => {
  sys = await startSystem({ worker: false, env: { DEFAULT_TTL_S: "1" } });
});
afterAll(async () => {
  await sys?.close();
});

describe("default ttl", () => {
  it("cancels a job sent without ttl with ttl_expired once the default ttl has passed", async () => {
    const token = await sys.token("alice");
    const id = await queueJob(sys, token, { ...FLUX_SCHNELL_512, prompt: "never started" });
    const job = await waitFor(async () => {
      const res = await sys.call(`/jobs/${id}`, { token });
      const body = (await res.json()) as { status: string; error?: { code: string; retriable: boolean } };
      return body.status !== "queued" && body;
    });
    expect(job.status).toBe("cancelled");
    expect(job.error).toMatchObject({ code: "ttl_expired", retriable: false });
  });
});
