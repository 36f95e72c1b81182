// Aging (issue 9 §6 c), with real processes: a `low` job under a permanent `high` flood starts within
// the aging bound. AGING_BOUND_S = 3; one backend of 2 slots; a feeder keeps `high` jobs queued through
// POST /queue the whole time, from another tenant (variant 1) and from the low job's own tenant
// (variant 2). The bound is in fleet time (API.md §3 "Order"; docs/decisions.md "Fair share": newer
// work of a higher priority passes a job for at most its offset's worth of fleet time), so it is
// asserted on what passed the low job, not on the clock: the slot time of the `high` jobs admitted
// after it that started before it is at most AGING_BOUND_S × 2 slots (× 1.5 for the error of the cost
// estimates, plus the attempts in flight). The flood was still queued when the low job started (it
// did not start because the flood ran dry). Under strict priorities the low job never starts while the
// flood lasts: the feeder stops once three times the bound's worth of newer work started, and the test
// fails.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  E2eHarness,
  call,
  foxRequest,
  readJob,
  token,
  until,
  waitForModel,
  waitTerminal,
  type Gateway,
  type JobDoc,
} from "../helpers/processes.js";
import {
  attemptSpans,
  fairCluster,
  ledgerProblems,
  startFeeder,
  tenantCounts,
  writeTiersFile,
} from "../helpers/fair-share.js";
import { createKeys, workRateField } from "../../src/queues/keys.js";

const AGING_BOUND_S = 3;
const SLOTS = 2;
/** Fleet time the bound lets newer `high` work pass a `low` job: the bound times the slots, ms. */
const BOUND_SLOT_MS = AGING_BOUND_S * 1000 * SLOTS;
const STEPS = 10;

let h: E2eHarness;
let api: Gateway;
let names: string[];
/** The warm-up job: a flood job's twin (same model, steps and format). */
let warmId: string;

beforeAll(async () => {
  h = new E2eHarness();
  const tiers = writeTiersFile(h, { any: { weight: 1 } });
  names = tiers.names;
  const cluster = await fairCluster(h, {
    tiersFile: tiers.file,
    capacity: SLOTS,
    stepMs: 10,
    env: { AGING_BOUND_S: String(AGING_BOUND_S), DEFAULT_SERVICE_MS: "120" },
  });
  await cluster.startWorker();
  api = await cluster.startApi();
  const warm = await token("warm-up", { tier: "any", tiers: names });
  await waitForModel(api.url, warm, "flux/schnell");
  const res = await call(api.url, "/queue", {
    method: "POST",
    token: warm,
    body: foxRequest("warm-up", STEPS),
  });
  expect(res.status).toBe(202);
  warmId = ((await res.json()) as { id: string }).id;
  await waitTerminal(api.url, warm, [warmId]);
}, 120_000);

afterAll(async () => {
  await h?.cleanup();
});

async function submit(bearer: string, prompt: string, priority: "high" | "low"): Promise<string> {
  const res = await call(api.url, "/queue", {
    method: "POST",
    token: bearer,
    body: { ...foxRequest(prompt, STEPS), priority },
  });
  const text = await res.text();
  if (res.status !== 202) throw new Error(`POST /queue: ${res.status} ${text}`);
  return (JSON.parse(text) as { id: string }).id;
}

/**
 * `flooder` keeps `high` jobs queued; once the flood is established `patient` submits one `low` job.
 * The flood goes on until the low job starts or three times the bound's worth of newer high work
 * started. Returns the low job and the flood's jobs, all finished.
 */
async function lowUnderFlood(flooder: string, patient: string) {
  const client = h.redis();
  const floodBearer = await token(flooder, { tier: "any", tiers: names });
  const patientBearer = await token(patient, { tier: "any", tiers: names });
  // a flood job's measured service time: the model's ms per work unit times a job's work units
  const keys = createKeys(h.prefix);
  const rate = Number(await client.hget(keys.stats, workRateField("flux/schnell")));
  const svc = rate * Number(await client.hget(keys.job(warmId), "work"));
  expect(svc).toBeGreaterThan(0);
  const limitJobs = Math.ceil((3 * BOUND_SLOT_MS) / svc);
  const feeder = startFeeder({
    target: 3 * SLOTS,
    queued: async () => (await tenantCounts(client, h.prefix, flooder)).q,
    submit: (i) => submit(floodBearer, `flood ${i}`, "high"),
    lanes: 2,
  });
  let low: string;
  try {
    await until("the flood is queued", async () => feeder.minQueued < Infinity, 30_000, 20);
    low = await submit(patientBearer, "patient", "low");
    const floodBefore = feeder.ids.length;
    await until(
      "the low job starts, or three times the bound's worth of newer high work starts before it",
      async () => {
        if ((await readJob(api.url, patientBearer, low))?.status !== "queued") return true;
        const started = feeder.ids.length - (await tenantCounts(client, h.prefix, flooder)).q;
        return started - floodBefore >= limitJobs;
      },
      120_000,
      50,
    );
  } finally {
    await feeder.stop();
  }
  // Everything finishes (under strict priorities the low job starts once the flood is over).
  const flood = await waitTerminal(api.url, floodBearer, feeder.ids, 60_000);
  const [lowJob] = await waitTerminal(api.url, patientBearer, [low], 60_000);
  return { low: lowJob!, flood, svc, limitJobs };
}

/** What passed the low job: the high jobs admitted after it that started before it, and their slot time. */
function passed(low: JobDoc, flood: readonly JobDoc[]) {
  const admitted = Date.parse(low.created_at);
  const started = low.started_at === undefined ? Number.POSITIVE_INFINITY : Date.parse(low.started_at);
  const jobs = flood.filter(
    (j) =>
      Date.parse(j.created_at) > admitted && j.started_at !== undefined && Date.parse(j.started_at) < started,
  );
  const slotMs = jobs.reduce((s, j) => s + attemptSpans(j).reduce((t, [a, b]) => t + (b - a), 0), 0);
  const longest = Math.max(0, ...flood.flatMap((j) => attemptSpans(j).map(([a, b]) => b - a)));
  // the flood still waiting when the low job started: admitted before that, started after it
  const stillQueued = flood.filter(
    (j) =>
      Date.parse(j.created_at) < started &&
      (j.started_at === undefined || Date.parse(j.started_at) > started),
  ).length;
  return { count: jobs.length, slotMs, longest, stillQueued };
}

function expectWithinBound(name: string, r: Awaited<ReturnType<typeof lowUnderFlood>>) {
  const p = passed(r.low, r.flood);
  const delayS = r.low.started_at
    ? (Date.parse(r.low.started_at) - Date.parse(r.low.created_at)) / 1000
    : NaN;
  console.log(
    `[fair-share-aging] ${name}: low job started ${delayS.toFixed(2)} s after admission (bound ${AGING_BOUND_S} s); ` +
      `${p.count} newer high jobs passed it, ${p.slotMs} slot ms (bound ${BOUND_SLOT_MS}); ${p.stillQueued} older high jobs still queued at its start`,
  );
  expect(r.low.status).toBe("complete");
  expect(p.slotMs, `slot ms of the newer high jobs that started before the low job`).toBeLessThanOrEqual(
    1.5 * BOUND_SLOT_MS + SLOTS * p.longest,
  );
  // It started by aging, not because the flood ran dry.
  expect(p.stillQueued).toBeGreaterThan(0);
}

describe("aging under a permanent high flood", () => {
  it("a low job of another tenant starts within the aging bound", async () => {
    const r = await lowUnderFlood("flood-a", "patient-a");
    expectWithinBound("another tenant's flood", r);
    expect(await ledgerProblems(h.redis(), h.prefix, ["flood-a", "patient-a"])).toEqual([]);
  }, 120_000);

  it("a low job of the flooding tenant itself starts within the aging bound", async () => {
    const r = await lowUnderFlood("flood-b", "flood-b");
    expectWithinBound("its own tenant's flood", r);
    expect(await ledgerProblems(h.redis(), h.prefix, ["flood-b"])).toEqual([]);
  }, 120_000);
});
