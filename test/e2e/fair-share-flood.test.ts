// Weighted fair share against a flood (issue 9 §6 a), with real processes: tenant A has 5,000 jobs
// queued (admitted straight into the scheduler through the API's admission code, in seconds) and
// running on one backend of 2 slots; then tenant B submits 20 jobs through POST /queue. B's first
// job is ordered ahead of all but the A jobs of its own virtual start (its 202 position is at most
// 2), it starts after at most that many A jobs plus the dispatches racing its admission, and
// all 20 of B's jobs complete while the flood still has thousands queued. Under first come, first
// served (the order before fair share) B's first job would wait behind the whole flood.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createKeys } from "../../src/queues/keys.js";
import {
  E2eHarness,
  call,
  foxRequest,
  token,
  waitForModel,
  waitTerminal,
  type Gateway,
} from "../helpers/processes.js";
import {
  createDirectAdmitter,
  fairCluster,
  ledgerProblems,
  tenantCounts,
  writeTiersFile,
  type DirectAdmitter,
} from "../helpers/fair-share.js";

const FLOOD = 5_000;
const B_JOBS = 20;
const SLOTS = 2;
const STEPS = 4;
/** A job of the flood and of B: the same route and steps (the same estimated cost). */
const body = (prompt: string) => ({ ...foxRequest(prompt, STEPS), seed: 7 });

let h: E2eHarness;
let api: Gateway;
let admitter: DirectAdmitter;
const env = { DEFAULT_SERVICE_MS: "60" };

beforeAll(async () => {
  h = new E2eHarness();
  const tiers = writeTiersFile(h, { flat: { weight: 1 } });
  const cluster = await fairCluster(h, { tiersFile: tiers.file, capacity: SLOTS, stepMs: 5, env });
  await cluster.startWorker();
  api = await cluster.startApi();
  admitter = createDirectAdmitter({
    redis: h.redis(),
    prefix: h.prefix,
    dataDir: h.tempDir(),
    tiers: tiers.tiers,
    env,
  });
  const warm = await token("warm-up", { tier: "flat", tiers: tiers.names });
  await waitForModel(api.url, warm, "flux/schnell");
  // One job measured first: every admission below is costed by the route's measured service time.
  const res = await call(api.url, "/queue", { method: "POST", token: warm, body: body("warm-up") });
  expect(res.status).toBe(202);
  await waitTerminal(api.url, warm, [((await res.json()) as { id: string }).id]);
}, 120_000);

afterAll(async () => {
  await admitter?.close();
  await h?.cleanup();
});

describe("fair share against a flood", () => {
  it("B's first job starts within a few jobs of its submit, not behind A's 5,000; all of B's 20 finish while A's flood waits", async () => {
    const client = h.redis();
    const keys = createKeys(h.prefix);
    const tiersNames = ["free", "pro", "flat"];
    const flood = await admitter.admit({ customer: "tenant-a", tier: "flat" }, body("flood"), FLOOD);
    const aQueued = (await tenantCounts(client, h.prefix, "tenant-a")).q;
    expect(aQueued).toBeGreaterThan(FLOOD - 1_000);

    const bBearer = await token("tenant-b", { tier: "flat", tiers: tiersNames });
    // B's first job alone (its admission time is then that of the admit call, give or take a
    // Redis round trip), then the other 19 at once, so that B stays backlogged: a tenant with nothing
    // queued or running gets its next job at the current virtual time again, and would go first
    // every time.
    const submitB = async (i: number) => {
      const res = await call(api.url, "/queue", { method: "POST", token: bBearer, body: body(`b ${i}`) });
      const created = (await res.json()) as { id: string; position: number; created_at: string };
      expect(res.status, JSON.stringify(created)).toBe(202);
      return created;
    };
    const first = await submitB(0);
    const b = [first, ...(await Promise.all(Array.from({ length: B_JOBS - 1 }, (_, i) => submitB(i + 1))))];
    // Fair share orders B's first job at the current virtual time: only A jobs of that same virtual
    // start (an equal key goes first come, first served) are ahead of it.
    expect(b[0]!.position).toBeLessThanOrEqual(2);

    const bJobs = await waitTerminal(
      api.url,
      bBearer,
      b.map((x) => x.id),
      60_000,
    );
    expect(bJobs.map((j) => j.status)).toEqual(Array<string>(B_JOBS).fill("complete"));
    // Not behind the flood: A still has thousands waiting when B is done.
    const aLeft = (await tenantCounts(client, h.prefix, "tenant-a")).q;
    expect(aLeft).toBeGreaterThan(FLOOD / 2);

    // Start times of A's jobs (the job hashes, read in pipelines: 5,000 GETs would take longer).
    const aStarted: number[] = [];
    for (let i = 0; i < flood.length; i += 1_000) {
      const pipe = client.pipeline();
      for (const id of flood.slice(i, i + 1_000)) pipe.hget(keys.job(id), "started");
      for (const [err, v] of (await pipe.exec()) ?? []) {
        if (err) throw err;
        if (v !== null) aStarted.push(Number(v));
      }
    }
    const b1Admitted = Date.parse(bJobs[0]!.created_at);
    const b1Started = Date.parse(bJobs[0]!.started_at!);
    const aBetween = aStarted.filter((t) => t >= b1Admitted && t <= b1Started).length;
    // At most its 202 position, plus the starts whose dispatch raced the admission (between the API
    // reading the clock and the admit running in Redis): one per slot, twice over for a loaded machine.
    expect(aBetween, `A jobs started between B's first submit and its start`).toBeLessThanOrEqual(
      b[0]!.position + 2 * SLOTS,
    );

    // While B's jobs ran, A kept running too (B did not take over the fleet).
    const bLastStarted = Math.max(...bJobs.map((j) => Date.parse(j.started_at!)));
    const aDuringB = aStarted.filter((t) => t >= b1Admitted && t <= bLastStarted).length;
    expect(aDuringB).toBeGreaterThan(0);
    console.log(
      `[fair-share-flood] B's first job: 202 position ${b[0]!.position}, ${aBetween} A jobs started before it; ` +
        `${aDuringB} A jobs started while B's ${B_JOBS} started (equal weights)`,
    );

    expect(await ledgerProblems(client, h.prefix, ["tenant-a", "tenant-b"])).toEqual([]);
  }, 90_000);
});
