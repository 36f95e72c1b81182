// A tier's running-at-once limit (issue 9 §6 f), with real processes: tenant capped (max_running 2)
// submits 10 jobs to a fleet of 4 slots. Never more than 2 of its attempts hold a slot at once (from
// the attempt logs, exactly, and from the ledger sampled while they run), the cap is reached, the jobs
// beyond it show `held: "concurrency_limit"` with a position while they wait, another tenant's jobs
// take the free slots meanwhile instead of waiting behind the held ones, and everything completes.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  E2eHarness,
  call,
  foxRequest,
  readJob,
  token,
  until,
  waitForModel,
  type Gateway,
} from "../helpers/processes.js";
import {
  fairCluster,
  ledgerProblems,
  peakOverlap,
  readJobs,
  tenantCounts,
  waitDrained,
  writeTiersFile,
} from "../helpers/fair-share.js";

const SLOTS = 4;
const CAP = 2;

let h: E2eHarness;
let api: Gateway;
let names: string[];

beforeAll(async () => {
  h = new E2eHarness();
  const tiers = writeTiersFile(h, { cap2: { max_running: CAP }, open: {} });
  names = tiers.names;
  const cluster = await fairCluster(h, { tiersFile: tiers.file, capacity: SLOTS, stepMs: 20 });
  await cluster.startWorker();
  api = await cluster.startApi();
  await waitForModel(api.url, await token("warm-up", { tier: "open", tiers: names }), "flux/schnell");
}, 120_000);

afterAll(async () => {
  await h?.cleanup();
});

async function submitAll(bearer: string, n: number, prompt: string): Promise<string[]> {
  return Promise.all(
    Array.from({ length: n }, async (_, i) => {
      const res = await call(api.url, "/queue", {
        method: "POST",
        token: bearer,
        body: foxRequest(`${prompt} ${i}`, 20),
      });
      const body = (await res.json()) as { id: string };
      expect(res.status, JSON.stringify(body)).toBe(202);
      return body.id;
    }),
  );
}

describe("running-at-once limit", () => {
  it("holds a tenant at max_running 2, shows its waiting jobs held, lets others run, and frees as jobs end", async () => {
    const client = h.redis();
    const capped = await token("capped", { tier: "cap2", tiers: names });
    const other = await token("other", { tier: "open", tiers: names });
    let sampling = true;
    let peakSampled = 0;
    const sampler = (async () => {
      while (sampling) {
        peakSampled = Math.max(peakSampled, (await tenantCounts(client, h.prefix, "capped")).r);
        await new Promise((r) => setTimeout(r, 5));
      }
    })();
    try {
      const mine = await submitAll(capped, 10, "capped");
      // A job beyond the cap waits held, with a position.
      const held = await until(
        "a job of the capped tenant shows held",
        async () => {
          for (const id of mine) {
            const j = (await readJob(api.url, capped, id)) as unknown as {
              held?: string;
              position?: number;
              status: string;
            };
            if (j.held !== undefined) return j;
          }
          return undefined;
        },
        20_000,
        20,
      );
      expect(held).toMatchObject({ status: "queued", held: "concurrency_limit" });
      expect(held.position).toBeGreaterThanOrEqual(0);
      // Meanwhile another tenant's jobs take the slots the capped tenant may not use.
      const theirs = await submitAll(other, 6, "other");
      await waitDrained(client, h.prefix, 60_000);
      const cappedJobs = await readJobs(api.url, capped, mine);
      const otherJobs = await readJobs(api.url, other, theirs);
      expect([...cappedJobs, ...otherJobs].map((j) => j.status)).toEqual(Array<string>(16).fill("complete"));
      expect(peakOverlap(cappedJobs)).toBe(CAP);
      expect(peakOverlap(otherJobs)).toBeGreaterThanOrEqual(SLOTS - CAP);
      // the other tenant did not wait behind the capped tenant's held jobs
      const lastCappedStart = Math.max(...cappedJobs.map((j) => Date.parse(j.started_at!)));
      for (const j of otherJobs) expect(Date.parse(j.started_at!)).toBeLessThan(lastCappedStart);
      // a held job shows nothing of it once it runs
      expect(cappedJobs.every((j) => (j as unknown as { held?: string }).held === undefined)).toBe(true);
    } finally {
      sampling = false;
      await sampler;
    }
    expect(peakSampled).toBeLessThanOrEqual(CAP);
    expect(peakSampled).toBeGreaterThan(0);
    expect(await tenantCounts(client, h.prefix, "capped")).toEqual({ q: 0, r: 0, h: 0 });
    expect(await ledgerProblems(client, h.prefix, ["capped", "other"])).toEqual([]);
  }, 90_000);
});
