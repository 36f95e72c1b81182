// Worker processes that die, freeze and get cancelled from another process (issue 3 items 7 and 9),
// with real processes: one `sim-backend`, one `start --roles api`, three `start --roles worker`
// sharing one backend (BACKENDS_FILE, capacity 9) on the run's redis-server.
//
//  1. kill -9 of one of three busy workers: every job completes, exactly once; the attempts the
//     dead worker held are `lost` and re-run after LOCK_MS; leases return to zero.
//  2. a worker frozen with SIGSTOP past its lease: the job is reaped and completed by another worker;
//     after SIGCONT the frozen worker's late answer changes nothing (stale token).
//  3. DELETE of a running job through the API process: the worker process aborts the backend call
//     (the simulator sees the connection close) within a second; the slot is released.
//
// The in-process versions of related scenarios are in test/integration/resilience.test.ts.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  E2eHarness,
  attemptOutcomes,
  call,
  foxRequest,
  leaseCounts,
  median,
  outputPath,
  readJob,
  simResetStats,
  simStats,
  submitJob,
  token,
  until,
  waitForModel,
  waitLeasesZero,
  waitTerminal,
  type CliProcess,
  type Gateway,
  type JobDoc,
} from "../helpers/processes.js";
import { scriptCallOf } from "../helpers/script-calls.js";
import { readFinishArgv } from "../../src/queues/finish-args.js";
import { monitorRedis } from "../helpers/redis-monitor.js";
import { createKeys } from "../../src/queues/keys.js";

const LOCK_MS = 2_000;
const STALLED_INTERVAL_MS = 300;
const STEP_MS = 75;
const CAPACITY = 9;
const CONCURRENCY = 3;

let h: E2eHarness;
let sim: Gateway;
let api: Gateway;
let workers: CliProcess[] = [];
let workerEnv: Record<string, string>;
let bearer: string;

const log = (...args: unknown[]) => console.log("[crash-workers]", ...args);

/** Starts a worker process and waits until it has published its backend (its id carries its pid). */
const startWorker = (name: string) => h.startWorker("gpu-a", { name, env: workerEnv });

beforeAll(async () => {
  h = new E2eHarness();
  sim = await h.simBackend({ env: { SIM_STEP_MS: String(STEP_MS), SIM_CAPACITY: "12" } });
  workerEnv = {
    BACKENDS_FILE: h.backendsFile([{ id: "gpu-a", url: sim.url, capacity: CAPACITY, streaming: false }]),
    LOCK_MS: String(LOCK_MS),
    STALLED_INTERVAL_MS: String(STALLED_INTERVAL_MS),
    WORKER_CONCURRENCY: String(CONCURRENCY),
    SHUTDOWN_GRACE_MS: "10000",
  };
  workers = await Promise.all([0, 1, 2].map((i) => startWorker(`worker ${i}`)));
  api = await h.start("api", { env: { LOCK_MS: String(LOCK_MS) } });
  bearer = await token("crash", { tier: "enterprise" });
  await waitForModel(api.url, bearer, "flux/schnell");
}, 120_000);

afterAll(async () => {
  await h?.cleanup();
});

describe("worker processes that crash", () => {
  it("kill -9 of one of three busy workers: every job completes exactly once; the lost attempts re-run", async () => {
    await simResetStats(sim.url);
    const ids: string[] = [];
    for (let i = 0; i < 30; i++)
      ids.push((await submitJob(api.url, bearer, foxRequest(`kill9 ${i}`, 16 + (i % 8)))).id);

    // Each worker runs at most CONCURRENCY attempts, so 9 calls in flight = all three are busy.
    await until(
      "all three workers busy (9 calls in flight at the simulator)",
      async () => (await simStats(sim.url)).active === CAPACITY,
      30_000,
      20,
    );
    const victim = workers[1]!;
    await victim.kill();
    const killedAt = Date.now();
    expect(victim.running).toBe(false);
    // Its connections closed with it: the simulator ends those generations.
    const abortedSeen = await until(
      "the simulator sees the dead worker's calls end",
      async () => {
        const s = await simStats(sim.url);
        return s.aborted >= 1 ? s.aborted : undefined;
      },
      5_000,
      20,
    );
    expect(abortedSeen).toBeGreaterThanOrEqual(1);

    const jobs = await waitTerminal(api.url, bearer, ids, 60_000);
    const allDoneMs = Date.now() - killedAt;
    const stats = await simStats(sim.url);

    const notComplete = jobs.filter((j) => j.status !== "complete");
    expect(notComplete.map((j) => `${j.id} ${j.status} ${JSON.stringify(j.error)}`)).toEqual([]);
    const completedTwice = jobs.filter(
      (j) => attemptOutcomes(j).filter((o) => o === "complete").length !== 1,
    );
    expect(completedTwice.map((j) => `${j.id}: ${attemptOutcomes(j).join(",")}`)).toEqual([]);

    const lostJobs: JobDoc[] = [];
    for (const j of jobs) {
      const o = attemptOutcomes(j);
      const calls = stats.calls_by_id[j.id] ?? 0;
      // Every attempt but the last one was lost with the dead worker; the last one completed.
      expect(o.at(-1), `${j.id}: ${o.join(",")}`).toBe("complete");
      expect(
        o.slice(0, -1).every((x) => x === "lost"),
        `${j.id}: ${o.join(",")}`,
      ).toBe(true);
      expect(j.attempts).toBe(o.length);
      // Each attempt reached the simulator once (a lost attempt may have died just before its call).
      expect(calls, `${j.id}: ${calls} calls for ${o.join(",")}`).toBeGreaterThanOrEqual(1);
      expect(calls, `${j.id}: ${calls} calls for ${o.join(",")}`).toBeLessThanOrEqual(o.length);
      if (o.includes("lost")) lostJobs.push(j);
      else expect(calls, `${j.id} never lost an attempt but was called ${calls} times`).toBe(1);
    }
    // The victim held CONCURRENCY attempts when it died: they were lost and re-run (plus, rarely, an
    // attempt its last settle had just started and it had not yet handed to BullMQ). Each held a lease.
    expect(lostJobs.length).toBeGreaterThanOrEqual(1);
    expect(lostJobs.length).toBeLessThanOrEqual(CAPACITY);
    // Each call the simulator saw cut short was one of them (a lost attempt may also have ended at the
    // simulator just before the kill, or died before its call).
    expect(stats.aborted).toBeLessThanOrEqual(lostJobs.length);
    for (const j of lostJobs) {
      const lost = j.attempt_log.find((a) => a.outcome === "lost")!;
      // Requeued by the reaper once the lease expired, not before.
      expect(Date.parse(lost.ended_at!)).toBeGreaterThanOrEqual(Date.parse(lost.started_at) + LOCK_MS - 50);
    }
    const rerun = jobs.filter((j) => (stats.calls_by_id[j.id] ?? 0) > 1);
    // Nothing but the dead worker's calls was ever cut short, and the simulator answered each job once
    // (plus a lost call that it finished after the kill, if any).
    expect(stats.failed + stats.rejected_busy + stats.rejected_bad_request).toBe(0);
    expect(stats.completed).toBeGreaterThanOrEqual(jobs.length);
    expect(stats.completed + stats.aborted).toBe(stats.calls);

    // A complete job never changes again: read it (and its raw record) twice, well past any lease.
    const raw1 = await Promise.all(ids.map((id) => h.redis().hgetall(createKeys(h.prefix).job(id))));
    await new Promise((r) => setTimeout(r, LOCK_MS + 2 * STALLED_INTERVAL_MS));
    const again = await Promise.all(ids.map((id) => readJob(api.url, bearer, id)));
    const raw2 = await Promise.all(ids.map((id) => h.redis().hgetall(createKeys(h.prefix).job(id))));
    again.forEach((j, i) => {
      const first = jobs[i]!;
      expect(j?.status).toBe("complete");
      expect(outputPath(j?.output)).toBe(outputPath(first.output));
      expect(j?.completed_at).toBe(first.completed_at);
      expect(j?.attempt_log).toEqual(first.attempt_log);
      expect(raw2[i]).toEqual(raw1[i]);
    });

    const leases = await waitLeasesZero(h.redis(), h.prefix);
    expect(leases).toMatchObject({ total: 0 });
    expect(Object.values(leases.byBackend).every((n) => n === 0)).toBe(true);
    expect((await simStats(sim.url)).active).toBe(0);
    // The two survivors are still up (they exit cleanly at the end of the file).
    expect([workers[0]!.running, workers[2]!.running]).toEqual([true, true]);

    log(
      `kill -9 figures: submitted ${ids.length}, completed ${jobs.length - notComplete.length}, ` +
        `re-run ${rerun.length} (jobs with >1 backend call), lost-attempt jobs ${lostJobs.length}, ` +
        `lost jobs ${notComplete.length}, completed twice ${completedTwice.length}; sim calls ${stats.calls}, ` +
        `completed ${stats.completed}, aborted ${stats.aborted}; all complete ${allDoneMs} ms after the kill`,
    );
  }, 120_000);

  it("a worker frozen past its lease (SIGSTOP): the job completes elsewhere; its late answer is rejected", async () => {
    // One worker left, so that we know which process runs the job; the others stop cleanly.
    const frozen = workers[0]!;
    for (const w of workers.slice(1).filter((x) => x.running)) {
      expect(await w.stop(), w.describe()).toEqual({ code: 0, signal: null, forced: false });
    }
    await simResetStats(sim.url);

    const { id } = await submitJob(api.url, bearer, foxRequest("frozen in the middle", 40)); // ~3 s
    const jobKey = createKeys(h.prefix).job(id);
    await until(
      "the job runs on the frozen-to-be worker",
      async () =>
        (await readJob(api.url, bearer, id))?.status === "running" && (await simStats(sim.url)).active === 1,
      30_000,
      20,
    );
    const firstToken = await h.redis().hget(jobKey, "token");
    expect(firstToken).toBeTruthy();
    frozen.pause();
    const pausedAt = Date.now();

    // Another worker takes over once the frozen one's lease has expired and been reaped.
    const rescuer = await startWorker("worker 3 (rescuer)");
    workers.push(rescuer);
    const [done] = await waitTerminal(api.url, bearer, [id], 30_000);
    expect(done!.status).toBe("complete");
    expect(attemptOutcomes(done!)).toEqual(["lost", "complete"]);
    const lost = done!.attempt_log[0]!;
    expect(Date.parse(lost.ended_at!)).toBeGreaterThanOrEqual(pausedAt + LOCK_MS - 1_000);

    // The frozen worker's call ran to its end at the simulator: its answer waits in the socket.
    await until(
      "both calls answered by the simulator",
      async () => (await simStats(sim.url)).completed === 2,
    );
    const rawBefore = await h.redis().hgetall(jobKey);
    const before = (await readJob(api.url, bearer, id))!;

    // Watch the resumed worker settle: its finish call carries the job id and its (old) token.
    const settles: string[] = [];
    const monitor = await monitorRedis(h.redisUrl, (args) => {
      const script = scriptCallOf(args);
      if (script?.name !== "finish") return;
      const settle = readFinishArgv(script.argv);
      if (settle.id === id && settle.token === firstToken) settles.push(settle.outcome);
    });
    try {
      frozen.resume();
      // Its late answer (or, once its renewal tells it the attempt is gone, its abort) is settled
      // with the old token: finish.lua rejects it and the job stays as the rescuer left it.
      await until("the resumed worker settles its stale attempt", async () => settles.length > 0, 15_000);
      await new Promise((r) => setTimeout(r, 1_000));
    } finally {
      await monitor.close();
    }
    expect(settles).toHaveLength(1);
    log(`the resumed worker settled its stale attempt as "${settles[0]}" (rejected: stale token)`);

    const after = (await readJob(api.url, bearer, id))!;
    expect(await h.redis().hgetall(jobKey)).toEqual(rawBefore);
    expect(after.status).toBe("complete");
    expect(outputPath(after.output)).toBe(outputPath(before.output));
    expect(after.completed_at).toBe(before.completed_at);
    expect(after.gpu_ms).toBe(before.gpu_ms);
    expect(after.attempt_log).toEqual(before.attempt_log);
    expect(await waitLeasesZero(h.redis(), h.prefix)).toMatchObject({ total: 0 });
    // The resumed worker is healthy: it keeps running (it takes part in the cancel runs below).
    expect(frozen.running).toBe(true);
  }, 90_000);
});

describe("cancel across processes", () => {
  it("DELETE through the API process aborts the backend call in the worker process within 1 s", async () => {
    const times: number[] = [];
    for (let run = 0; run < 5; run++) {
      const { id } = await submitJob(api.url, bearer, foxRequest(`[sim:slow=30000] cancel me ${run}`, 1));
      await until(
        "the job runs at the simulator",
        async () =>
          (await readJob(api.url, bearer, id))?.status === "running" &&
          (await simStats(sim.url)).active === 1,
        30_000,
        20,
      );
      const before = await simStats(sim.url);
      const t0 = Date.now();
      const res = await call(api.url, `/jobs/${id}`, { method: "DELETE", token: bearer });
      expect(res.status).toBe(202);
      const abortedAt = await until(
        "the simulator sees the call aborted",
        async () => {
          const s = await simStats(sim.url);
          return s.aborted > before.aborted && s.active === 0 ? Date.now() : undefined;
        },
        5_000,
        5,
      );
      times.push(abortedAt - t0);
      expect(abortedAt - t0, `run ${run}: cancel to abort`).toBeLessThan(1_000);
      const j = (await readJob(api.url, bearer, id))!;
      expect(j.status).toBe("cancelled");
      expect(j.error?.code).toBe("cancelled");
      await waitLeasesZero(h.redis(), h.prefix, 5_000);
      const settled = await until("the attempt is closed as cancelled", async () => {
        const x = (await readJob(api.url, bearer, id))!;
        return x.attempt_log.at(-1)?.outcome ? x : undefined;
      });
      expect(attemptOutcomes(settled)).toEqual(["cancelled"]);
    }
    const l = await leaseCounts(h.redis(), h.prefix);
    expect(l.total).toBe(0);
    log(`cancel-to-abort ms: ${times.join(", ")}; median ${median(times)}`);
  }, 90_000);
});
