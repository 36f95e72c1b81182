// Crash, shutdown and cancel of sync attempts run in their worker process without BullMQ
// (docs/decisions.md "Sync attempts skip BullMQ"), with real processes on the run's redis-server:
// two `start --roles worker` processes, each with a simulator of its own as backend `gpu-a` (so the
// simulator that sees a call tells which process runs it), WORKER_CONCURRENCY=3, and one
// `start --roles api,pipeline` the sync callers are connected to (it also bills). Each test checks
// from the worker's debug log that the attempt did run in its process, not through BullMQ.
//
//  1. kill -9 of the process while the attempt is on the GPU, after it has held its lease for longer
//     than LOCK_MS (renewed): the other process runs the job again once the lease expired; the caller
//     gets its 200; the dead process's call was cut (or finished unobserved); one completion, one
//     terminal event, one ledger line.
//  2. SIGTERM with a grace longer than the attempt: it completes (the caller's 200), exit 0. With a
//     grace shorter: handed back at the end of the grace as BullMQ's active attempts are (outcome
//     `busy`, no attempt spent, the job back at its place, the call aborted), exit 0; the next
//     worker completes it and the caller still gets its 200.
//  3. DELETE /jobs/{id}, and the sync caller disconnecting (SYNC_CANCEL_ON_DISCONNECT), abort the
//     backend call (the simulator's `aborted`) and cancel the job.
import { existsSync, readFileSync, readdirSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  E2eHarness,
  attemptOutcomes,
  call,
  pngDimensions,
  readJob,
  simResetStats,
  simStats,
  token,
  until,
  waitForModel,
  waitLeasesZero,
  within,
  type CliProcess,
  type Gateway,
} from "../helpers/processes.js";
import {
  directRuns,
  leasedJobs,
  ownGpuWorker,
  runningOn,
  syncCall,
  type OwnGpuWorker,
} from "../helpers/sync-direct.js";
import { createKeys } from "../../src/queues/keys.js";

const STEP_MS = 50;
const LOCK_MS = 2_000;
const WORKER_ENV = {
  WORKER_CONCURRENCY: "3",
  LOCK_MS: String(LOCK_MS),
  STALLED_INTERVAL_MS: "300",
  SHUTDOWN_GRACE_MS: "10000",
  // The attempt runner says at debug which sync attempts it runs in its process (directRuns).
  LOG_LEVEL: "debug",
};

let h: E2eHarness;
let workers: OwnGpuWorker[] = [];
let api: Gateway;
let bearer: string;

const log = (...args: unknown[]) => console.log("[sync-direct-crash]", ...args);

/** The job of the one sync call in flight, once it holds a lease and its worker logged running it here. */
async function directJob(w: OwnGpuWorker): Promise<string> {
  const [id] = await until("the running job holds a lease", async () => {
    const ids = await leasedJobs(h);
    return ids.length === 1 ? ids : undefined;
  });
  expect(directRuns(w.proc)).toContain(id);
  return id!;
}

/** Terminal events in the job's event list (`complete`, or `error`, a cancel's too). */
async function terminalEvents(id: string): Promise<string[]> {
  const events = await h.redis().lrange(createKeys(h.prefix).events(id), 0, -1);
  return events.map((e) => e.split("\n")[0]!).filter((n) => ["complete", "error"].includes(n));
}

/** Ledger lines of job `id` over every file the pipeline wrote. */
function ledgerLines(id: string): number {
  const root = join(h.dataDir, "ledger");
  if (!existsSync(root)) return 0;
  let n = 0;
  for (const day of readdirSync(root))
    for (const f of readdirSync(join(root, day)))
      for (const line of readFileSync(join(root, day, f), "utf8").split("\n"))
        if (line !== "" && (JSON.parse(line) as { job_id: string }).job_id === id) n++;
  return n;
}

/** SIGTERM now; resolves with the exit and how long it took. */
async function terminate(p: CliProcess, timeoutMs: number) {
  const t0 = Date.now();
  p.signal("SIGTERM");
  const exit = await within(p.exited, timeoutMs);
  if (!exit) throw new Error(`no exit within ${timeoutMs} ms of SIGTERM\n${p.describe()}`);
  return { ...exit, ms: Date.now() - t0 };
}

const resetSims = () => Promise.all(workers.map((w) => simResetStats(w.sim.url)));

beforeAll(async () => {
  h = new E2eHarness();
  workers = await Promise.all(
    ["worker 1", "worker 2"].map((n) =>
      ownGpuWorker(h, n, { capacity: 4, stepMs: STEP_MS, env: WORKER_ENV }),
    ),
  );
  api = await h.start("api,pipeline", { env: { LOCK_MS: String(LOCK_MS) } });
  bearer = await token("sync-direct-crash", { tier: "enterprise" });
  await waitForModel(api.url, bearer, "flux/schnell");
}, 120_000);

afterAll(async () => {
  await h?.cleanup();
});

describe("a sync attempt run in its worker process", () => {
  let survivor: OwnGpuWorker | undefined;
  let victim: OwnGpuWorker | undefined;

  it("kill -9 of its process: the job is reaped back, run again elsewhere, the caller gets 200, billed once", async () => {
    await resetSims();
    const sync = syncCall(api.url, bearer, { prompt: "kill me", steps: 120 }); // 6 s
    victim = await runningOn(workers);
    survivor = workers.find((w) => w !== victim)!;
    const id = await directJob(victim);
    const runningSince = Date.now();
    // Held past LOCK_MS and a few reaper passes: its lease is renewed although BullMQ does not know it.
    await new Promise((r) => setTimeout(r, LOCK_MS + 1_000));
    const before = (await readJob(api.url, bearer, id))!;
    expect(attemptOutcomes(before)).toEqual(["open"]);
    expect(await leasedJobs(h)).toEqual([id]);
    expect((await simStats(survivor.sim.url)).calls).toBe(0);

    await victim.proc.kill();
    const killedAt = Date.now();
    const answer = await sync.answer;
    expect(answer.status, answer.bytes.toString()).toBe(200);
    expect(answer.headers.get("x-job-id")).toBe(id);
    expect(pngDimensions(answer.bytes).width).toBeGreaterThan(0);

    const job = (await readJob(api.url, bearer, id))!;
    expect(job.status).toBe("complete");
    expect(attemptOutcomes(job)).toEqual(["lost", "complete"]);
    // Reaped once its lease expired after the kill, not before.
    const lost = job.attempt_log[0]!;
    expect(Date.parse(lost.ended_at!)).toBeGreaterThan(killedAt);
    expect(lost.backend).toBe("gpu-a");
    // The survivor ran the second attempt, in its process too.
    expect(directRuns(survivor.proc)).toContain(id);
    const [dead, alive] = await Promise.all([simStats(victim.sim.url), simStats(survivor.sim.url)]);
    expect(dead.calls_by_id[id]).toBe(1);
    expect(dead.aborted + dead.completed).toBe(1);
    expect(alive.calls_by_id[id]).toBe(1);
    expect(alive.completed).toBe(1);
    expect(await terminalEvents(id)).toEqual(["complete"]);
    await until("the job is billed", async () => ledgerLines(id) >= 1);
    expect(await waitLeasesZero(h.redis(), h.prefix)).toMatchObject({ total: 0 });
    expect(ledgerLines(id)).toBe(1);
    log(
      `kill -9 after ${killedAt - runningSince} ms on the GPU: caller's 200 after ${answer.ms} ms; the dead ` +
        `process's call ${dead.aborted === 1 ? "aborted" : "finished unobserved"}; one ledger line`,
    );
  }, 120_000);

  it("SIGTERM with a grace longer than the attempt: it completes, the caller gets 200, exit 0", async () => {
    const w = survivor!;
    await resetSims();
    const sync = syncCall(api.url, bearer, { prompt: "finish me", steps: 40 }); // 2 s
    expect(await runningOn([w])).toBe(w);
    const id = await directJob(w);
    const exit = await terminate(w.proc, 20_000);
    expect(exit.code, w.proc.describe()).toBe(0);
    expect(exit.signal).toBeNull();
    expect(exit.ms).toBeLessThan(10_000);
    const answer = await sync.answer;
    expect(answer.status, answer.bytes.toString()).toBe(200);
    const job = (await readJob(api.url, bearer, id))!;
    expect(attemptOutcomes(job)).toEqual(["complete"]);
    const s = await simStats(w.sim.url);
    expect({ calls: s.calls, completed: s.completed, aborted: s.aborted }).toEqual({
      calls: 1,
      completed: 1,
      aborted: 0,
    });
    expect(await terminalEvents(id)).toEqual(["complete"]);
    expect(await waitLeasesZero(h.redis(), h.prefix)).toMatchObject({ total: 0 });
    log(`SIGTERM, grace 10 s: exit 0 after ${exit.ms} ms, the attempt completed`);
  }, 120_000);

  it("SIGTERM with a grace shorter than the attempt: handed back (busy, no attempt spent), completed by the next worker", async () => {
    // No worker runs now: the one started with a 1 s grace runs the sync attempt alone.
    const w = victim!;
    await w.restart({ SHUTDOWN_GRACE_MS: "1000" });
    await waitForModel(api.url, bearer, "flux/schnell");
    await resetSims();
    const sync = syncCall(api.url, bearer, { prompt: "hand me back", steps: 120 }); // 6 s
    expect(await runningOn([w])).toBe(w);
    const id = await directJob(w);
    const exit = await terminate(w.proc, 15_000);
    expect(exit.code, w.proc.describe()).toBe(0);
    expect(exit.signal).toBeNull();
    expect(exit.ms).toBeGreaterThanOrEqual(900);
    expect(exit.ms).toBeLessThan(1_000 + 4_000);

    const back = (await readJob(api.url, bearer, id))!;
    expect(back.status).toBe("queued");
    expect(back.position).toBe(0);
    expect(attemptOutcomes(back)).toEqual(["busy"]);
    expect(await h.redis().hget(createKeys(h.prefix).job(id), "spent")).toBe("0");
    const s = await simStats(w.sim.url);
    expect({ active: s.active, calls: s.calls, aborted: s.aborted }).toEqual({
      active: 0,
      calls: 1,
      aborted: 1,
    });
    expect(await waitLeasesZero(h.redis(), h.prefix, 5_000)).toMatchObject({ total: 0 });

    // The next worker completes it; the caller, still waiting, gets its 200.
    const next = survivor!;
    await next.restart();
    const answer = await sync.answer;
    expect(answer.status, answer.bytes.toString()).toBe(200);
    const done = (await readJob(api.url, bearer, id))!;
    expect(attemptOutcomes(done)).toEqual(["complete"]);
    expect(done.attempt_log[0]?.busy_handbacks).toBe(1);
    expect(await terminalEvents(id)).toEqual(["complete"]);
    log(
      `SIGTERM, grace 1 s: exit 0 after ${exit.ms} ms, handed back; the caller's 200 after ${answer.ms} ms`,
    );
  }, 120_000);

  it("DELETE /jobs/{id} and a sync caller leaving both abort the backend call", async () => {
    // The worker just started: wait until the API's capacity snapshot (refreshed about once a second) has it.
    await waitForModel(api.url, bearer, "flux/schnell");
    for (const how of ["DELETE", "disconnect"] as const) {
      await resetSims();
      const sync = syncCall(api.url, bearer, { prompt: `[sim:slow=30000] cancel by ${how}`, steps: 1 });
      const early = await within(sync.answer, 3_000);
      if (early) throw new Error(`${early.status} ${early.bytes.toString()}`);
      const w = await runningOn(workers.filter((x) => x.proc.running));
      const id = await directJob(w);
      if (how === "DELETE") {
        const res = await call(api.url, `/jobs/${id}`, { method: "DELETE", token: bearer });
        expect(res.status).toBe(202);
      } else {
        sync.abort();
      }
      await until(
        `the simulator sees the call aborted (${how})`,
        async () => {
          const s = await simStats(w.sim.url);
          return s.aborted === 1 && s.active === 0;
        },
        10_000,
        20,
      );
      if (how === "DELETE") expect((await sync.answer).status).toBe(409);
      else await expect(sync.answer).rejects.toThrow();
      const job = await until("the attempt is closed as cancelled", async () => {
        const j = (await readJob(api.url, bearer, id))!;
        return j.attempt_log.at(-1)?.outcome ? j : undefined;
      });
      expect(job.status).toBe("cancelled");
      expect(attemptOutcomes(job)).toEqual(["cancelled"]);
      expect(await terminalEvents(id)).toEqual(["error"]);
      expect(await waitLeasesZero(h.redis(), h.prefix, 5_000)).toMatchObject({ total: 0 });
    }
  }, 120_000);
});
