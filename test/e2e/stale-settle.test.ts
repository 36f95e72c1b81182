// A late answer from a superseded attempt that arrives while its job runs again, under a new token
// (finish.lua's token check, end to end, with real processes): worker A is frozen (SIGSTOP) past its
// lease, the reaper puts the job back, worker B runs it again with a backend call that hangs; A,
// resumed, settles its old attempt with the answer the simulator gave it meanwhile. The settle is
// discarded: the job keeps running as B has it, and ends as B's attempt ends.
// (test/e2e/crash-workers.test.ts has the case where the job completed before the late answer.)
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  E2eHarness,
  attemptOutcomes,
  call,
  foxRequest,
  readJob,
  simStats,
  submitJob,
  token,
  until,
  waitForModel,
  waitLeasesZero,
  waitTerminal,
  type CliProcess,
  type Gateway,
} from "../helpers/processes.js";
import { monitorRedis } from "../helpers/redis-monitor.js";
import { createKeys } from "../../src/queues/keys.js";

const LOCK_MS = 2_000;

let h: E2eHarness;
let sim: Gateway;
let api: Gateway;
let workerA: CliProcess;
let workerEnv: Record<string, string>;
let bearer: string;

const simConfig = async (patch: Record<string, unknown>) => {
  const res = await fetch(`${sim.url}/sim/config`, {
    method: "PUT",
    headers: { "content-type": "application/json" },
    body: JSON.stringify(patch),
  });
  expect(res.status).toBe(204);
};

beforeAll(async () => {
  h = new E2eHarness();
  sim = await h.simBackend({ env: { SIM_STEP_MS: "50" } });
  workerEnv = {
    BACKENDS_FILE: h.backendsFile([{ id: "gpu-a", url: sim.url, capacity: 2, streaming: false }]),
    LOCK_MS: String(LOCK_MS),
    STALLED_INTERVAL_MS: "300",
    WORKER_CONCURRENCY: "1",
  };
  [workerA, api] = await Promise.all([
    h.startWorker("gpu-a", { name: "worker A", env: workerEnv }),
    h.start("api", { env: { LOCK_MS: String(LOCK_MS) } }),
  ]);
  bearer = await token("stale", { tier: "enterprise" });
  await waitForModel(api.url, bearer, "flux/schnell");
}, 120_000);

afterAll(async () => {
  await h?.cleanup();
});

describe("a superseded attempt's late answer", () => {
  it("is discarded while the job runs again under a new token", async () => {
    const { id } = await submitJob(api.url, bearer, foxRequest("superseded", 40)); // ~2 s at the simulator
    const jobKey = createKeys(h.prefix).job(id);
    await until(
      "the job runs on worker A",
      async () =>
        (await readJob(api.url, bearer, id))?.status === "running" && (await simStats(sim.url)).active === 1,
      30_000,
      20,
    );
    const oldToken = await h.redis().hget(jobKey, "token");
    expect(oldToken).toBeTruthy();
    workerA.pause();
    // From now on every new call hangs (until its client goes away); A's call runs to its end.
    await simConfig({ hang_rate: 1 });

    // Worker B takes the job once A's lease has expired and the job was put back.
    await h.startWorker("gpu-a", { name: "worker B", env: workerEnv });
    await until(
      "the job runs again on worker B, and A's call was answered meanwhile",
      async () => {
        const [newToken, stats] = await Promise.all([h.redis().hget(jobKey, "token"), simStats(sim.url)]);
        return newToken !== oldToken && stats.hung === 1 && stats.completed === 1;
      },
      30_000,
      20,
    );
    const rawBefore = await h.redis().hgetall(jobKey);
    expect(rawBefore.status).toBe("running");
    expect(attemptOutcomes((await readJob(api.url, bearer, id))!)).toEqual(["lost", "open"]);

    // A, resumed, settles its attempt with the old token (its answer, or the abort its renewal
    // orders): seen as the script call naming the job, the old token and an outcome.
    const settles: string[][] = [];
    const monitor = await monitorRedis(h.redisUrl, (args) => {
      const cmd = args[0]?.toLowerCase();
      if ((cmd === "evalsha" || cmd === "eval") && args.includes(id) && args.includes(oldToken!)) {
        if (args.some((a) => ["complete", "busy", "retry", "failed"].includes(a))) settles.push(args);
      }
    });
    try {
      workerA.resume();
      await until("worker A settles its old attempt", async () => settles.length > 0, 15_000, 20);
    } finally {
      await monitor.close();
    }
    // Settled after the script ran (one thread): the job is as B's attempt has it, untouched.
    expect(await h.redis().hgetall(jobKey)).toEqual(rawBefore);
    const during = (await readJob(api.url, bearer, id))!;
    expect(during.status).toBe("running");
    expect(attemptOutcomes(during)).toEqual(["lost", "open"]);

    // B's attempt is the job's: cancelling the job ends B's call, and the job with it.
    await simConfig({ hang_rate: 0 });
    expect((await call(api.url, `/jobs/${id}`, { method: "DELETE", token: bearer })).status).toBe(202);
    const [done] = await waitTerminal(api.url, bearer, [id], 30_000);
    expect(done!.status).toBe("cancelled");
    expect(await waitLeasesZero(h.redis(), h.prefix)).toMatchObject({ total: 0 });
    const settledLog = await until("B's attempt is closed", async () => {
      const j = (await readJob(api.url, bearer, id))!;
      return j.attempt_log.at(-1)?.outcome ? j : undefined;
    });
    expect(attemptOutcomes(settledLog)).toEqual(["lost", "cancelled"]);
    expect((await simStats(sim.url)).active).toBe(0);
  }, 90_000);
});
