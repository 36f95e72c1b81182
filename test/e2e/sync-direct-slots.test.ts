// Sync attempts run in their worker process without BullMQ (docs/decisions.md "Sync attempts skip
// BullMQ"), with real processes on the run's redis-server: two `start --roles worker` processes, each
// with a simulator of its own as backend `gpu-a` (so a simulator's `peak_active` is one process's
// concurrent attempts), and one `start --roles api`.
//
//  1. WORKER_CONCURRENCY=2 and a mix of async jobs and sync calls in flight: neither process ever has
//     more than 2 backend calls at once, while sync attempts do run in their process (the worker's
//     debug log names them) beside async ones. Fails when a sync attempt runs beside one BullMQ runs
//     (BullMQ's waiting fetch brings a third: peaks 3 and 3 before the fix), and when BullMQ is not
//     given one slot less meanwhile.
//  2. The sync route takes the output the worker role of its own process hands over in memory
//     (`start --roles api,worker`): the CAS object is corrupted before the call, with the same size
//     (a put of bytes that exist with that size trusts the file), and the answer is still the right
//     image; an API in another process reads the CAS instead (the corrupt object: a 500; restored:
//     the image).
import { existsSync, readFileSync, renameSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  E2eHarness,
  attemptOutcomes,
  call,
  foxRequest,
  problemOf,
  readJob,
  simResetStats,
  simStats,
  submitJob,
  token,
  until,
  waitForModel,
  waitLeasesZero,
  waitTerminal,
  type Gateway,
} from "../helpers/processes.js";
import { directRuns, ownGpuWorker, syncCall, type OwnGpuWorker } from "../helpers/sync-direct.js";
import { hexOf, objectPath } from "../../src/infra/fs-blob-layout.js";

const STEP_MS = 50;
const CONCURRENCY = 2;
/** More slots than both processes have: the backend's capacity never bounds them, their concurrency does. */
const CAPACITY = 8;
const WORKER_ENV = {
  WORKER_CONCURRENCY: String(CONCURRENCY),
  LOCK_MS: "2000",
  STALLED_INTERVAL_MS: "300",
  SHUTDOWN_GRACE_MS: "10000",
  // The attempt runner says at debug which sync attempts it runs in its process (directRuns).
  LOG_LEVEL: "debug",
};

let h: E2eHarness;
let workers: OwnGpuWorker[] = [];
let api: Gateway;
let bearer: string;

const log = (...args: unknown[]) => console.log("[sync-direct-slots]", ...args);

beforeAll(async () => {
  h = new E2eHarness();
  workers = await Promise.all(
    ["worker 1", "worker 2"].map((n) =>
      ownGpuWorker(h, n, { capacity: CAPACITY, stepMs: STEP_MS, env: WORKER_ENV }),
    ),
  );
  // A budget that admits every sync call behind the async jobs however slow the loaded machine is.
  api = await h.start("api", { env: { SYNC_BUDGET_MS: "120000" } });
  bearer = await token("sync-direct-slots", { tier: "enterprise" });
  await waitForModel(api.url, bearer, "flux/schnell");
}, 120_000);

afterAll(async () => {
  await h?.cleanup();
});

describe("sync attempts run in their worker process", () => {
  it("WORKER_CONCURRENCY=2 with async and sync jobs in flight: no process runs more than 2 attempts", async () => {
    await Promise.all(workers.map((w) => simResetStats(w.sim.url)));
    const asyncIds: string[] = [];
    const syncs: ReturnType<typeof syncCall>[] = [];
    for (let round = 0; round < 16; round++) {
      if (round % 2 === 0) {
        // An async job of 1 s (one process runs it, a slot of its two busy), then at once a sync call
        // (300 ms) and an async job (500 ms), which find a slot free in either process: a sync
        // attempt run beside the BullMQ one would leave that BullMQ's waiting fetch a third.
        asyncIds.push((await submitJob(api.url, bearer, foxRequest(`long ${round}`, 20))).id);
        await new Promise((r) => setTimeout(r, 150));
        syncs.push(syncCall(api.url, bearer, { prompt: `sync ${round}`, steps: 6 }));
        asyncIds.push((await submitJob(api.url, bearer, foxRequest(`short ${round}`, 10))).id);
      } else {
        // Both idle: a sync call (it runs in the process that starts it), then three async jobs of
        // 500 ms at once: BullMQ, given one slot less there, must take only one of them there.
        syncs.push(syncCall(api.url, bearer, { prompt: `sync ${round}`, steps: 6 }));
        for (let i = 0; i < 3; i++)
          asyncIds.push((await submitJob(api.url, bearer, foxRequest(`beside ${round}.${i}`, 10))).id);
      }
      await new Promise((r) => setTimeout(r, 1_200));
    }
    const answers = await Promise.all(syncs.map((s) => s.answer));
    expect(answers.map((a) => `${a.status} ${a.status === 200 ? "" : a.bytes.toString()}`)).toEqual(
      answers.map(() => "200 "),
    );
    const syncIds = answers.map((a) => a.headers.get("x-job-id")!);
    const jobs = await waitTerminal(api.url, bearer, [...asyncIds, ...syncIds], 60_000);
    for (const j of jobs)
      expect(`${j.id} ${j.status} ${attemptOutcomes(j).join(",")}`).toBe(`${j.id} complete complete`);

    const stats = await Promise.all(workers.map((w) => simStats(w.sim.url)));
    const runs = workers.map((w) => directRuns(w.proc));
    const direct = syncIds.filter((id) => runs.some((r) => r.includes(id)));
    log(
      `peak backend calls per process: ${stats.map((s) => s.peak_active).join(", ")}; calls ` +
        `${stats.map((s) => s.calls).join(", ")}; sync attempts run without BullMQ ${direct.length} of ${syncIds.length}`,
    );
    // Only sync attempts run so (each once).
    expect(runs.flat().sort()).toEqual([...direct].sort());
    // The case under test happened: sync attempts ran in their process, beside others.
    expect(direct.length).toBeGreaterThanOrEqual(1);
    expect(Math.max(...stats.map((s) => s.peak_active))).toBe(CONCURRENCY);
    // And no process ran more than its concurrency at once.
    expect(stats.map((s) => s.peak_active <= CONCURRENCY)).toEqual(workers.map(() => true));
    expect(stats.reduce((n, s) => n + s.calls, 0)).toBe(jobs.length);
    expect(await waitLeasesZero(h.redis(), h.prefix)).toMatchObject({ total: 0 });
  }, 120_000);

  it("api and worker in one process: the route answers with the bytes handed over, not the CAS object", async () => {
    // Only the api+worker process runs attempts from here on.
    for (const w of workers)
      expect(await w.proc.stop(), w.proc.describe()).toEqual({ code: 0, signal: null, forced: false });
    const backendsFile = h.backendsFile([
      { id: "gpu-a", url: workers[0]!.sim.url, capacity: CAPACITY, streaming: false },
    ]);
    const both = await h.start("api,worker", {
      name: "api+worker",
      env: { ...WORKER_ENV, BACKENDS_FILE: backendsFile },
    });
    await waitForModel(both.url, bearer, "flux/schnell");

    // The output of this request, made once; the sim renders the same bytes for the same request.
    const request = { prompt: "handed over", steps: 4, seed: 4242 };
    const reference = await syncCall(api.url, bearer, request).answer;
    expect(reference.status).toBe(200);
    const digest = reference.headers.get("content-location")!.split("?")[0]!.split("/").at(-1)!;
    const path = objectPath(join(h.dataDir, "cas"), hexOf(digest));
    // Written to the CAS right after the answer (docs/decisions.md "Sync route").
    await until("the output is written to the CAS", async () => existsSync(path));
    const good = readFileSync(path);
    // Same size, other bytes: a put of the same output trusts the file; a read of it fails its hash.
    const bad = Buffer.from(good.map((b) => b ^ 0xff));
    const replace = (bytes: Buffer) => {
      writeFileSync(`${path}.swap`, bytes, { mode: 0o600 });
      renameSync(`${path}.swap`, path);
    };

    replace(bad);
    const here = await syncCall(both.url, bearer, request).answer;
    expect(here.status, here.bytes.toString()).toBe(200);
    expect(here.bytes.equals(good)).toBe(true);
    // The CAS object was not rewritten (so the answer cannot have come from it).
    expect(readFileSync(path).equals(bad)).toBe(true);

    // An API in another process: the attempt runs in the api+worker process, the answer is read from the CAS.
    const elsewhere = await syncCall(api.url, bearer, request).answer;
    expect(elsewhere.status).toBe(500);
    await problemOf(
      new Response(elsewhere.bytes, { status: 500, headers: elsewhere.headers }),
      500,
      "internal_error",
    );
    replace(good);
    const restored = await syncCall(api.url, bearer, request).answer;
    expect(restored.status).toBe(200);
    expect(restored.bytes.equals(good)).toBe(true);

    // The in-memory answer was the attempt of this process's worker (the only one running).
    const ran = await readJob(api.url, bearer, here.headers.get("x-job-id")!);
    expect(ran?.status).toBe("complete");
    expect(await waitLeasesZero(h.redis(), h.prefix)).toMatchObject({ total: 0 });
    log(
      `handover: ${good.length} bytes answered from memory with the CAS object corrupted; the other API read the CAS`,
    );
    expect(await call(both.url, "/health").then((r) => r.status)).toBe(200);
  }, 120_000);
});
