// Pools with real processes (docs/decisions.md "Pools"): `start --roles sim`, two `start --roles
// worker` with different WORKER_POOL, `start --roles api` and `start --roles pipeline`, all with one
// POOLS_FILE; jobs submitted to both pools complete on their own pool's worker, and the pipeline
// bills the jobs of both.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { readSse } from "../helpers/system.js";
import { E2eHarness, call, token, until, type Gateway } from "../helpers/processes.js";
import { poolPrefix } from "../../src/core/pools.js";
import { createKeys } from "../../src/queues/keys.js";

let h: E2eHarness;
let api: Gateway;
let alice: string;

const backend = (simUrl: string, id: string, model: string) => ({
  id,
  url: simUrl,
  engine: "nunchaku",
  capacity: 2,
  models: [model],
});

beforeAll(async () => {
  h = new E2eHarness();
  const sim = await h.start("sim", { wait: "sim" });
  const env = {
    BACKENDS_FILE: h.writeFile(
      "backends.json",
      JSON.stringify({
        backends: [backend(sim.url, "gpu-a", "flux/dev"), backend(sim.url, "gpu-b", "flux/schnell")],
      }),
    ),
    POOLS_FILE: h.writeFile(
      "pools.json",
      JSON.stringify({ pools: [{ name: "fast", models: ["flux/schnell"], backends: ["gpu-b"] }] }),
    ),
  };
  const fast = await h.start("worker", {
    wait: "none",
    env: { ...env, WORKER_POOL: "fast" },
    name: "worker fast",
  });
  const dflt = await h.start("worker", { wait: "none", env, name: "worker default" });
  const registered = async (prefix: string) => (await h.redis().hlen(createKeys(prefix).registry)) > 0;
  await fast.proc.waitUntil("the fast pool's worker", async () =>
    (await registered(poolPrefix(h.prefix, "fast"))) ? true : undefined,
  );
  await dflt.proc.waitUntil("the default pool's worker", async () =>
    (await registered(h.prefix)) ? true : undefined,
  );
  await h.start("pipeline", { wait: "none", env });
  api = await h.start("api", { env });
  alice = await token("alice");
});
afterAll(async () => {
  await h?.cleanup();
});

describe("two pools, a worker process each", () => {
  it("runs jobs of both pools to completion, each on its pool's backend, and bills them all", async () => {
    const submitted: { id: string; model: string }[] = [];
    for (let i = 0; i < 6; i++) {
      for (const model of ["schnell", "dev"]) {
        const res = await call(api.url, "/queue", {
          method: "POST",
          token: alice,
          body: { modality: "image", family: "flux", model, task: "t2i", format: "512", prompt: `job ${i}` },
        });
        expect(res.status).toBe(202);
        submitted.push({ id: ((await res.json()) as { id: string }).id, model });
      }
    }
    for (const { id, model } of submitted) expect(id.endsWith("fast")).toBe(model === "schnell");
    // followed live through the API's hub (the fast pool's event channel)
    const last = submitted.find((s) => s.model === "schnell")!;
    const events = await readSse(
      await call(api.url, `/jobs/${last.id}/events`, { token: alice }),
      (e) => e.event === "complete" || e.event === "error",
      60_000,
    );
    expect(events.at(-1)!.event).toBe("complete");
    const admin = await token("ops", { admin: true });
    for (const { id, model } of submitted) {
      const job = await until(
        `job ${id} complete`,
        async () => {
          const r = await call(api.url, `/jobs/${id}?redirect=false`, { token: admin });
          const j = (await r.json()) as { status: string; attempt_log?: { backend: string }[] };
          return j.status === "complete" ? j : undefined;
        },
        60_000,
      );
      expect(job.attempt_log?.at(-1)?.backend).toBe(model === "schnell" ? "gpu-b" : "gpu-a");
    }
    // the pipeline read both pools' outboxes: every job has its billing marker (deployment-wide keys)
    const keys = createKeys(h.prefix);
    await until(
      "every job billed",
      async () => {
        const marks = await Promise.all(submitted.map((s) => h.redis().get(keys.billed(s.id))));
        return marks.every((m) => m === "done") ? true : undefined;
      },
      60_000,
    );
  });
});
