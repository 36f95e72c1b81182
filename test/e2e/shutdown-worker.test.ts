// SIGTERM of a worker process with attempts running (issue 3 items 7 and 9), with real processes:
// one `sim-backend`, one `start --roles api` and `start --roles worker` processes one after the
// other (BACKENDS_FILE: one backend of capacity 4), on the run's redis-server.
//
//  1. SHUTDOWN_GRACE_MS longer than the running attempts: they complete, the worker exits 0 and
//     takes nothing new after the signal (queued jobs and jobs submitted after it wait for the next
//     worker), leases return to zero.
//  2. SHUTDOWN_GRACE_MS shorter than the attempts: the worker hands them back at the end of the
//     grace (job queued again at its place, attempt outcome `busy`, no attempt spent), exits 0 within
//     grace + a few seconds, and the next worker completes them.
//  3. Enough grace while another worker runs, attempts draining for longer than LOCK_MS: the draining
//     worker keeps their leases alive, so the other worker's reaper must not take them back (no
//     `lost` attempt, no second backend call); the other worker runs what was submitted meanwhile.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  E2eHarness,
  attemptOutcomes,
  foxRequest,
  readJob,
  simResetStats,
  simStats,
  submitJob,
  token,
  until,
  waitForModel,
  within,
  waitLeasesZero,
  waitTerminal,
  type CliProcess,
  type Gateway,
  type JobDoc,
} from "../helpers/processes.js";
import { createKeys } from "../../src/queues/keys.js";

const STEP_MS = 50;
const CAPACITY = 4;
/** Length of the attempts of the drain-beside-another-worker case (150 steps, the most flux takes). */
const CAPACITY_JOB_MS = 150 * STEP_MS;

let h: E2eHarness;
let sim: Gateway;
let api: Gateway;
let backendsFile: string;
let bearer: string;

const log = (...args: unknown[]) => console.log("[shutdown-worker]", ...args);

const startWorker = (name: string, graceMs: number) =>
  h.startWorker("gpu-a", {
    name,
    env: {
      BACKENDS_FILE: backendsFile,
      LOCK_MS: "2000",
      STALLED_INTERVAL_MS: "300",
      SHUTDOWN_GRACE_MS: String(graceMs),
    },
  });

/** The API process, started (once a worker serves flux/schnell) by the first test that needs it. */
async function startApiOnce(): Promise<void> {
  if (api) return;
  api = await h.start("api");
  await waitForModel(api.url, bearer, "flux/schnell");
}

/** SIGTERM now; resolves with the exit and how long it took. */
async function terminate(p: CliProcess, timeoutMs: number) {
  const t0 = Date.now();
  p.signal("SIGTERM");
  const exit = await within(p.exited, timeoutMs);
  if (!exit) throw new Error(`no exit within ${timeoutMs} ms of SIGTERM\n${p.describe()}`);
  return { ...exit, ms: Date.now() - t0 };
}

const running = async (n: number) =>
  until(
    `${n} calls in flight at the simulator`,
    async () => (await simStats(sim.url)).active === n,
    30_000,
    20,
  );

beforeAll(async () => {
  h = new E2eHarness();
  sim = await h.simBackend({ env: { SIM_STEP_MS: String(STEP_MS), SIM_CAPACITY: "12" } });
  backendsFile = h.backendsFile([{ id: "gpu-a", url: sim.url, capacity: CAPACITY, streaming: false }]);
  bearer = await token("shutdown", { tier: "enterprise" });
}, 60_000);

afterAll(async () => {
  await h?.cleanup();
});

describe("SIGTERM of a worker process", () => {
  let next: CliProcess | undefined;
  let last: CliProcess | undefined;

  it("with enough grace: running attempts complete, nothing new is taken, exit 0, leases back to zero", async () => {
    const first = await startWorker("worker A (grace 20 s)", 20_000);
    await startApiOnce();
    await simResetStats(sim.url);

    // 4 attempts of ~2 s run, 2 wait for a slot.
    const before: string[] = [];
    for (let i = 0; i < 6; i++)
      before.push((await submitJob(api.url, bearer, foxRequest(`drain ${i}`, 40))).id);
    await running(CAPACITY);

    const exiting = terminate(first, 25_000);
    const signalledAt = Date.now();
    // Submitted after the signal: nobody may take them while the worker drains.
    const after: string[] = [];
    for (let i = 0; i < 3; i++)
      after.push((await submitJob(api.url, bearer, foxRequest(`after ${i}`, 4))).id);
    let maxCalls = 0;
    let exited = false;
    void exiting.then(() => (exited = true));
    while (!exited) {
      maxCalls = Math.max(maxCalls, (await simStats(sim.url)).calls);
      await new Promise((r) => setTimeout(r, 50));
    }
    const exit = await exiting;
    expect(exit.code, first.describe()).toBe(0);
    expect(exit.signal).toBeNull();
    // It waited for its attempts (~2 s), well within the grace.
    expect(exit.ms).toBeLessThan(20_000);
    expect(maxCalls).toBe(CAPACITY);

    const jobs = await Promise.all([...before, ...after].map((id) => readJob(api.url, bearer, id)));
    const ran = jobs.filter((j) => j!.status === "complete");
    expect(ran).toHaveLength(CAPACITY);
    for (const j of ran) {
      expect(attemptOutcomes(j!)).toEqual(["complete"]);
      expect(Date.parse(j!.completed_at!)).toBeGreaterThan(signalledAt);
    }
    const waiting = jobs.filter((j) => j!.status !== "complete");
    expect(waiting.map((j) => j!.id)).toEqual([...before.slice(CAPACITY), ...after]);
    // Still in the order they came, at the head of the queue, never attempted.
    expect(waiting.map((j) => j!.position)).toEqual(waiting.map((_, i) => i));
    for (const j of waiting) {
      expect(j!.status).toBe("queued");
      expect(j!.attempt_log).toEqual([]);
    }
    expect(await waitLeasesZero(h.redis(), h.prefix, 5_000)).toMatchObject({ total: 0 });
    const s = await simStats(sim.url);
    expect({ active: s.active, calls: s.calls, aborted: s.aborted }).toEqual({
      active: 0,
      calls: CAPACITY,
      aborted: 0,
    });
    log(
      `grace long enough: exit 0 after ${exit.ms} ms, ${ran.length} completed, ${waiting.length} left queued`,
    );

    // The next worker runs what was left.
    next = await startWorker("worker B (grace 1 s)", 1_000);
    const rest = await waitTerminal(
      api.url,
      bearer,
      waiting.map((j) => j!.id),
      30_000,
    );
    expect(rest.map((j) => j.status)).toEqual(rest.map(() => "complete"));
    for (const j of rest) expect(attemptOutcomes(j)).toEqual(["complete"]);
    expect(await waitLeasesZero(h.redis(), h.prefix)).toMatchObject({ total: 0 });
  }, 120_000);

  it("with a grace shorter than the attempts: they are handed back (busy, no attempt spent), exit 0", async () => {
    const victim = next ?? (await startWorker("worker B (grace 1 s)", 1_000));
    await startApiOnce();
    await simResetStats(sim.url);
    const ids: string[] = [];
    // ~3 s each: 4 run, 2 wait.
    for (let i = 0; i < 6; i++)
      ids.push((await submitJob(api.url, bearer, foxRequest(`handback ${i}`, 60))).id);
    await running(CAPACITY);

    const exit = await terminate(victim, 15_000);
    expect(exit.code, victim.describe()).toBe(0);
    expect(exit.signal).toBeNull();
    expect(exit.ms).toBeGreaterThanOrEqual(900);
    expect(exit.ms).toBeLessThan(1_000 + 4_000);

    const jobs = (await Promise.all(ids.map((id) => readJob(api.url, bearer, id)))) as JobDoc[];
    // Everything queued again, in the original order: the handed-back jobs kept their place.
    expect(jobs.map((j) => j.status)).toEqual(ids.map(() => "queued"));
    expect(jobs.map((j) => j.position)).toEqual(ids.map((_, i) => i));
    const handedBack = jobs.filter((j) => j.attempt_log.length > 0);
    expect(handedBack.map((j) => j.id)).toEqual(ids.slice(0, CAPACITY));
    for (const j of handedBack) {
      expect(attemptOutcomes(j)).toEqual(["busy"]);
      // The attempt is logged but not spent (JOB_ATTEMPTS counts spent attempts).
      expect(await h.redis().hget(createKeys(h.prefix).job(j.id), "spent")).toBe("0");
    }
    for (const j of jobs.slice(CAPACITY)) expect(j.attempt_log).toEqual([]);
    const s = await simStats(sim.url);
    // The simulator saw each handed-back call end (the worker aborted it at the end of the grace).
    expect({ active: s.active, calls: s.calls, aborted: s.aborted }).toEqual({
      active: 0,
      calls: CAPACITY,
      aborted: CAPACITY,
    });
    expect(await waitLeasesZero(h.redis(), h.prefix, 5_000)).toMatchObject({ total: 0 });
    log(`grace too short: exit 0 after ${exit.ms} ms (grace 1000 ms), ${handedBack.length} handed back`);

    // Another worker completes them all.
    last = await startWorker("worker C (grace 20 s)", 20_000);
    const done = await waitTerminal(api.url, bearer, ids, 60_000);
    expect(done.map((j) => j.status)).toEqual(ids.map(() => "complete"));
    // each handed-back attempt is folded into the attempt that completed it (no attempt spent)
    for (const j of done.slice(0, CAPACITY)) {
      expect(attemptOutcomes(j)).toEqual(["complete"]);
      expect(j.attempt_log[0]?.busy_handbacks).toBe(1);
    }
    for (const j of done.slice(CAPACITY)) expect(attemptOutcomes(j)).toEqual(["complete"]);
    expect(await waitLeasesZero(h.redis(), h.prefix)).toMatchObject({ total: 0 });
  }, 120_000);
  it("with enough grace while another worker runs: draining attempts keep their leases and run once", async () => {
    const draining = last ?? (await startWorker("worker C (grace 20 s)", 20_000));
    await startApiOnce();
    await simResetStats(sim.url);
    // ~7.5 s each, all on the draining worker (the only one running yet).
    const ids: string[] = [];
    for (let i = 0; i < CAPACITY; i++)
      ids.push((await submitJob(api.url, bearer, foxRequest(`long drain ${i}`, 150))).id);
    await running(CAPACITY);
    const startedAt = Date.now();
    const other = await startWorker("worker D", 10_000);
    const signalledAt = Date.now();
    // The attempts must outlast LOCK_MS (2 s) plus a reaper pass after the signal, or this proves nothing.
    expect(startedAt + CAPACITY_JOB_MS - signalledAt).toBeGreaterThan(3_000);

    const exiting = terminate(draining, 25_000);
    const after: string[] = [];
    for (let i = 0; i < 2; i++)
      after.push((await submitJob(api.url, bearer, foxRequest(`meanwhile ${i}`, 4))).id);
    const exit = await exiting;
    expect(exit.code, draining.describe()).toBe(0);
    expect(exit.ms).toBeLessThan(20_000);

    const drained = await waitTerminal(api.url, bearer, ids, 30_000);
    const s = await simStats(sim.url);
    // Each drained attempt completed on the draining worker: not reaped as lost, not re-run.
    expect(
      drained.map((j) => `${j.id} ${j.status} ${attemptOutcomes(j).join(",")} calls=${s.calls_by_id[j.id]}`),
    ).toEqual(ids.map((id) => `${id} complete complete calls=1`));
    // The other worker ran what came in meanwhile.
    const meanwhile = await waitTerminal(api.url, bearer, after, 30_000);
    for (const j of meanwhile) expect(attemptOutcomes(j)).toEqual(["complete"]);
    expect(other.running).toBe(true);
    expect(await waitLeasesZero(h.redis(), h.prefix)).toMatchObject({ total: 0 });
    log(
      `drain beside another worker: exit 0 after ${exit.ms} ms, ${drained.length} drained attempts completed once`,
    );
  }, 120_000);
});
