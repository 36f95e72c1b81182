// The capacity that can really run a job (issue 9), with real processes: one `sim-backend`, one
// `start --roles api`, worker processes (`start --roles worker`, WORKER_CONCURRENCY=4) sharing one
// backend of capacity 16.
//
//  1. The measured defect: after short jobs taught the gateway how fast the model is, 24 jobs of the
//     maximum steps are queued; a sync request with `Prefer: wait=1` cannot start within a second
//     (4 worker slots, not 16, and each job ahead costs seconds, not the short jobs' milliseconds):
//     503 capacity_exhausted with Retry-After, and nothing stored.
//  2. A worker killed with SIGKILL stops counting: its slot announcement expires within its lock
//     time (LOCK_MS) and the API's capacity falls back to the slots of the workers still alive.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  E2eHarness,
  call,
  problemOf,
  submitJob,
  token,
  until,
  waitForModel,
  type CliProcess,
  type Gateway,
} from "../helpers/processes.js";
import { createKeys } from "../../src/queues/keys.js";

const LOCK_MS = 2_000;
const STEP_MS = 20;
const BACKEND_CAPACITY = 16;
const CONCURRENCY = 4;
/** The longest the test waits for any condition (a shared 2-core machine can be slow). */
const WAIT_MS = 60_000;
/** A test's own bound: its waits and requests, each bounded by WAIT_MS. */
const TEST_MS = 3 * WAIT_MS;
/** The most steps a flux/schnell job may ask for (API.md §3). */
const MAX_STEPS = 150;

let h: E2eHarness;
let sim: Gateway;
let api: Gateway;
let workerA: CliProcess;
let workerEnv: Record<string, string>;
let bearer: string;
let admin: string;

interface ReadyDetails {
  capacity: { usable: number; running: number; ms_per_unit: Record<string, number> };
  workers: { id: string; slots: number; backends: string[] }[];
}

async function ready(): Promise<ReadyDetails> {
  const res = await call(api.url, "/ready", { token: admin });
  expect(res.status).toBe(200);
  return (await res.json()) as ReadyDetails;
}

/** Waits until the API's capacity snapshot (what ETAs and sync admission use) satisfies `check`. */
function waitForCapacity(what: string, check: (r: ReadyDetails) => boolean): Promise<ReadyDetails> {
  return until(
    what,
    async () => {
      const r = await ready();
      return check(r) ? r : undefined;
    },
    WAIT_MS,
    100,
  );
}

/** The job records stored under this prefix (SCAN may return a key twice: counted once). */
async function storedJobs(): Promise<number> {
  const pattern = createKeys(h.prefix).job("*");
  const seen = new Set<string>();
  let cursor = "0";
  do {
    const [next, keys] = await h.redis().scan(cursor, "MATCH", pattern, "COUNT", 1000);
    cursor = next;
    for (const k of keys) seen.add(k);
  } while (cursor !== "0");
  return seen.size;
}

beforeAll(async () => {
  h = new E2eHarness();
  sim = await h.simBackend({ env: { SIM_STEP_MS: String(STEP_MS), SIM_CAPACITY: "32" } });
  workerEnv = {
    BACKENDS_FILE: h.backendsFile([
      { id: "gpu-a", url: sim.url, capacity: BACKEND_CAPACITY, models: ["flux/schnell"] },
    ]),
    LOCK_MS: String(LOCK_MS),
    WORKER_CONCURRENCY: String(CONCURRENCY),
  };
  workerA = await h.startWorker("gpu-a", { name: "worker a", env: workerEnv });
  api = await h.start("api", { env: { LOCK_MS: String(LOCK_MS) } });
  bearer = await token("capacity", { tier: "enterprise" });
  admin = await token("capacity-admin", { admin: true });
  await waitForModel(api.url, bearer, "flux/schnell", WAIT_MS);
}, 120_000);

afterAll(async () => {
  await h?.cleanup();
});

describe("the capacity that can really run a job", () => {
  it(
    "counts the worker slots serving the backend, not the backend's slots",
    async () => {
      const r = await waitForCapacity("worker a's slots are counted", (d) => d.workers.length === 1);
      expect(r.workers[0]).toMatchObject({ slots: CONCURRENCY, backends: ["gpu-a"] });
      expect(r.capacity.usable).toBe(CONCURRENCY);
    },
    TEST_MS,
  );

  it(
    "refuses a sync job that cannot start within Prefer: wait=1 behind 24 max-steps jobs: 503, nothing stored",
    async () => {
      // Short jobs (the model's default steps) teach the gateway the model's ms per work unit.
      for (let i = 0; i < 3; i++) {
        const res = await call(api.url, "/image/flux/schnell/t2i", {
          method: "POST",
          token: bearer,
          body: { prompt: `short ${i}` },
        });
        const text = res.status === 200 ? "" : await res.text();
        if (res.status === 200) await res.arrayBuffer();
        expect(res.status, text).toBe(200);
      }
      await waitForCapacity("the API knows what a flux/schnell work unit costs", (d) =>
        Number.isFinite(d.capacity.ms_per_unit["flux/schnell"]),
      );

      const ids: string[] = [];
      try {
        for (let i = 0; i < 24; i++) {
          const body = { modality: "image", family: "flux", model: "schnell", task: "t2i", steps: MAX_STEPS };
          ids.push((await submitJob(api.url, bearer, { ...body, prompt: `long ${i}` })).id);
        }
        const before = await storedJobs();
        const res = await call(api.url, "/image/flux/schnell/t2i", {
          method: "POST",
          token: bearer,
          headers: { prefer: "wait=1" },
          body: { prompt: "now please", steps: MAX_STEPS },
        });
        await problemOf(res, 503, "capacity_exhausted");
        expect(res.headers.get("retry-after")).toMatch(/^[1-9]\d*$/);
        expect(res.headers.get("x-job-id")).toBeNull();
        expect(await storedJobs()).toBe(before);
      } finally {
        for (const id of ids.reverse()) {
          const r = await call(api.url, `/jobs/${id}`, { method: "DELETE", token: bearer });
          await r.arrayBuffer();
        }
      }

      // Once the slots are free again, the same wait admits a job and answers with it.
      await waitForCapacity("the cancelled jobs' slots are free", (d) => d.capacity.running === 0);
      const ok = await call(api.url, "/image/flux/schnell/t2i?format=512", {
        method: "POST",
        token: bearer,
        headers: { prefer: "wait=1" },
        body: { prompt: "room now" },
      });
      const text = ok.status === 200 ? "" : await ok.text();
      if (ok.status === 200) await ok.arrayBuffer();
      expect([200, 202], text).toContain(ok.status);
    },
    TEST_MS,
  );

  it(
    "admits no more of a burst of sync requests at idle than the free slots start within the wait",
    async () => {
      await waitForCapacity("the slots are free", (d) => d.capacity.running === 0);
      const answers = await Promise.all(
        Array.from({ length: 10 }, async (_, i) => {
          // (the format the model's rate was learned at: the simulator's time is per step, whatever
          // the pixels, while the cost model scales with them)
          const res = await call(api.url, "/image/flux/schnell/t2i", {
            method: "POST",
            token: bearer,
            headers: { prefer: "wait=1" },
            body: { prompt: `burst ${i}`, steps: MAX_STEPS },
          });
          if (res.status === 200) {
            await res.arrayBuffer();
            return { http: 200 };
          }
          const body = (await res.json()) as { id?: string; status?: string; error?: string };
          return { http: res.status, id: body.id, job: body.status, error: body.error };
        }),
      );
      try {
        const admitted = answers.filter((a) => a.http !== 503);
        // Each admitted job started within the wait: a 202 after it names a running job, never a
        // queued one. No more were admitted than the worker slots (4, not the backend's 16).
        expect(admitted.map((a) => (a.http === 202 ? a.job : "done"))).not.toContain("queued");
        expect(admitted.every((a) => a.http === 200 || a.http === 202)).toBe(true);
        expect(admitted.length).toBeGreaterThan(0);
        expect(admitted.length).toBeLessThanOrEqual(CONCURRENCY);
        for (const a of answers) if (a.http === 503) expect(a.error).toBe("capacity_exhausted");
      } finally {
        for (const a of answers) {
          if (a.id === undefined) continue;
          const r = await call(api.url, `/jobs/${a.id}`, { method: "DELETE", token: bearer });
          await r.arrayBuffer();
        }
      }
    },
    TEST_MS,
  );

  it(
    "stops counting a worker killed with SIGKILL once its announcement expires (LOCK_MS)",
    async () => {
      const workerB = await h.startWorker("gpu-a", { name: "worker b", env: workerEnv });
      const both = await waitForCapacity("both workers' slots are counted", (d) => d.workers.length === 2);
      expect(both.capacity.usable).toBe(2 * CONCURRENCY);
      const idB = both.workers.find((w) => w.id.includes(`-${workerB.pid}-`))?.id;
      expect(idB).toBeDefined();

      await workerB.kill();
      // The dead worker's announcement lives no longer than its lock time: Redis drops it by then.
      const ttl = await h.redis().pttl(createKeys(h.prefix).workerSlots(idB!));
      expect(ttl).toBeLessThanOrEqual(LOCK_MS);

      const after = await waitForCapacity("the killed worker's slots stop counting", (d) =>
        d.workers.every((w) => w.id !== idB),
      );
      expect(after.capacity.usable).toBe(CONCURRENCY);
      expect(after.workers.map((w) => w.id)).toEqual([both.workers.find((w) => w.id !== idB)!.id]);
      expect(workerA.running).toBe(true);
    },
    TEST_MS,
  );
});
