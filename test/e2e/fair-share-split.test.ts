// Weighted fair share splits the fleet by weight, not by job count (issue 9 §6 b), with real
// processes: tenant heavy (weight 3) and tenant light (weight 1) keep jobs queued through POST /queue
// the whole run, heavy's jobs of 40 steps and light's of 10 (the simulator takes steps × 20 ms), on one
// backend of 4 slots. Over a window in the middle of the run (from light's 25th start to its 105th),
// the slot time each tenant's attempts held (each lease clipped to the window) splits 3:1 ± 10%.
// Both keep the same number of jobs queued, so first come, first served would split it by job cost
// (4:1), and a split by job count 1:4.
//
// The job cost is, until the cost model lands, the measured service time of the job's route, the
// same for every job of one model whatever its steps: so the two tenants use different models, and
// each route's estimate is its own jobs' time. (With one model for both, the estimate would be the
// mix's, every job would cost the same and the split would follow job counts, not steps.)
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  E2eHarness,
  call,
  token,
  until,
  waitForModel,
  waitTerminal,
  type Gateway,
} from "../helpers/processes.js";
import {
  fairCluster,
  ledgerProblems,
  readJobs,
  slotMsWithin,
  startFeeder,
  tenantCounts,
  writeTiersFile,
} from "../helpers/fair-share.js";

const SLOTS = 4;
const STEP_MS = 20;
const HEAVY = { customer: "heavy", tier: "w3", family: "flux", model: "schnell", steps: 40 } as const;
const LIGHT = { customer: "light", tier: "w1", family: "sdxl", model: "lcm", steps: 10 } as const;
type Tenant = typeof HEAVY | typeof LIGHT;
/** The window: from light's WINDOW_FROM-th start to its WINDOW_TO-th. */
const WINDOW_FROM = 25;
const WINDOW_TO = 105;

const body = (t: Tenant, i: number) => ({
  modality: "image",
  family: t.family,
  model: t.model,
  task: "t2i",
  format: "512",
  prompt: `${t.customer} ${i}`,
  steps: t.steps,
  seed: 11,
});

let h: E2eHarness;
let api: Gateway;
let names: string[];

beforeAll(async () => {
  h = new E2eHarness();
  const tiers = writeTiersFile(h, { w3: { weight: 3 }, w1: { weight: 1 } });
  names = tiers.names;
  const cluster = await fairCluster(h, {
    tiersFile: tiers.file,
    capacity: SLOTS,
    stepMs: STEP_MS,
    env: { DEFAULT_SERVICE_MS: "500" },
  });
  await cluster.startWorker();
  api = await cluster.startApi();
  const warm = await token("warm-up", { tier: "w1", tiers: names });
  await waitForModel(api.url, warm, "flux/schnell");
  // Both routes' service times measured before the tenants start: their jobs are costed by them.
  const ids: string[] = [];
  for (const t of [HEAVY, LIGHT])
    for (let i = 0; i < 2; i++) {
      const res = await call(api.url, "/queue", { method: "POST", token: warm, body: body(t, -1 - i) });
      expect(res.status).toBe(202);
      ids.push(((await res.json()) as { id: string }).id);
    }
  await waitTerminal(api.url, warm, ids);
}, 120_000);

afterAll(async () => {
  await h?.cleanup();
});

describe("weighted fair share", () => {
  it("weights 3:1 with jobs of 40 and 10 steps split the slot time 3:1 ± 10% under saturation", async () => {
    const client = h.redis();
    const bearer = {
      heavy: await token(HEAVY.customer, { tier: HEAVY.tier, tiers: names }),
      light: await token(LIGHT.customer, { tier: LIGHT.tier, tiers: names }),
    };
    const feeder = (t: Tenant, target: number) =>
      startFeeder({
        target,
        queued: async () => (await tenantCounts(client, h.prefix, t.customer)).q,
        submit: async (i) => {
          const res = await call(api.url, "/queue", {
            method: "POST",
            token: bearer[t.customer],
            body: body(t, i),
          });
          const text = await res.text();
          if (res.status !== 202) throw new Error(`POST /queue (${t.customer}): ${res.status} ${text}`);
          return (JSON.parse(text) as { id: string }).id;
        },
      });
    // The same number of jobs queued for each at all times (two to three seconds of each one's
    // share): first come, first served would then split the slot time by job cost, 4:1.
    const feeders = { heavy: feeder(HEAVY, 12), light: feeder(LIGHT, 12) };
    try {
      await until(
        `light has ${WINDOW_TO} jobs started`,
        async () =>
          feeders.light.ids.length - (await tenantCounts(client, h.prefix, LIGHT.customer)).q >= WINDOW_TO,
        90_000,
        100,
      );
    } finally {
      await Promise.all([feeders.heavy.stop(), feeders.light.stop()]);
    }
    // Neither tenant ran dry (sampled while feeding): both were backlogged the whole time.
    expect(feeders.heavy.minQueued).toBeGreaterThan(0);
    expect(feeders.light.minQueued).toBeGreaterThan(0);

    const heavy = await readJobs(api.url, bearer.heavy, feeders.heavy.ids);
    const light = await readJobs(api.url, bearer.light, feeders.light.ids);
    const lightStarts = light
      .filter((j) => j.started_at !== undefined)
      .map((j) => Date.parse(j.started_at!))
      .sort((a, b) => a - b);
    expect(lightStarts.length).toBeGreaterThanOrEqual(WINDOW_TO);
    const from = lightStarts[WINDOW_FROM - 1]!;
    const to = lightStarts[WINDOW_TO - 1]!;
    const slotHeavy = slotMsWithin(heavy, from, to);
    const slotLight = slotMsWithin(light, from, to);
    const ratio = slotHeavy / slotLight;
    // The sim's own time (gpu_ms) of the jobs that started in the window, for the record.
    const gpu = (jobs: typeof heavy) =>
      jobs
        .filter(
          (j) =>
            j.started_at !== undefined && Date.parse(j.started_at) >= from && Date.parse(j.started_at) < to,
        )
        .reduce((s, j) => s + (j.gpu_ms ?? 0), 0);
    console.log(
      `[fair-share-split] window ${((to - from) / 1000).toFixed(1)} s: slot ms heavy ${slotHeavy} / light ${slotLight} = ${ratio.toFixed(3)} ` +
        `(fleet busy ${((slotHeavy + slotLight) / (SLOTS * (to - from))).toFixed(3)}); gpu_ms of jobs started in it ${gpu(heavy)} / ${gpu(light)} = ${(gpu(heavy) / gpu(light)).toFixed(3)}`,
    );
    expect(ratio).toBeGreaterThanOrEqual(2.7);
    expect(ratio).toBeLessThanOrEqual(3.3);
    expect(await ledgerProblems(client, h.prefix, [HEAVY.customer, LIGHT.customer])).toEqual([]);
  }, 120_000);
});
