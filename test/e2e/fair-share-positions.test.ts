// Position = start order under weighted fair share (issue 9 §6 d; API.md §3 "Position"), with real
// processes: with the API up and no worker, 300 jobs of 10 tenants of weights 1, 2, 3 and 5, of every
// priority and three models, are queued through POST /queue. Their positions, read afterwards, are a
// permutation of 0…299, and none is below its 202 position (a position grows when a newer job is
// ordered ahead, never shrinks while nothing starts). Then one worker process runs them on one
// backend of capacity 1, and the i-th job to start is the job whose position was i.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { E2eHarness, call, token, type Gateway } from "../helpers/processes.js";
import {
  byStart,
  fairCluster,
  ledgerProblems,
  mixedJob,
  readJobs,
  waitDrained,
  writeTiersFile,
  type FairCluster,
  type OrderTenant,
} from "../helpers/fair-share.js";

const N = 300;
const WEIGHTS = [1, 2, 3, 5, 1, 2, 3, 5, 1, 2];
const TENANTS: OrderTenant[] = WEIGHTS.map((w, i) => ({ customer: `tenant-${i}`, tier: `w${w}` }));

let h: E2eHarness;
let cluster: FairCluster;
let api: Gateway;
let names: string[];

beforeAll(async () => {
  h = new E2eHarness();
  const tiers = writeTiersFile(h, {
    w1: { weight: 1 },
    w2: { weight: 2 },
    w3: { weight: 3 },
    w5: { weight: 5 },
  });
  names = tiers.names;
  cluster = await fairCluster(h, { tiersFile: tiers.file, capacity: 1, stepMs: 2 });
  api = await cluster.startApi();
}, 120_000);

afterAll(async () => {
  await h?.cleanup();
});

describe("position equals start order under fair share", () => {
  it("for 300 jobs of 10 tenants of mixed weights and priorities, run one at a time", async () => {
    const bearers = new Map<string, string>();
    for (const t of TENANTS) bearers.set(t.customer, await token(t.customer, { tier: t.tier, tiers: names }));
    const admitted: { id: string; position: number }[] = new Array(N);
    let next = 0;
    const lane = async () => {
      while (next < N) {
        const i = next++;
        const { tenant, body } = mixedJob(i, TENANTS);
        const res = await call(api.url, "/queue", {
          method: "POST",
          token: bearers.get(tenant.customer)!,
          body,
        });
        const created = (await res.json()) as { id: string; position: number };
        expect(res.status, JSON.stringify(created)).toBe(202);
        admitted[i] = created;
      }
    };
    await Promise.all(Array.from({ length: 4 }, lane));

    const admin = await token("operator", { tier: "pro", tiers: names, admin: true });
    const queued = await readJobs(
      api.url,
      admin,
      admitted.map((a) => a.id),
    );
    const positions = new Map(queued.map((j) => [j.id, j.position!]));
    expect(queued.every((j) => j.status === "queued")).toBe(true);
    expect([...positions.values()].sort((a, b) => a - b)).toEqual([...Array(N).keys()]);
    for (const a of admitted) expect(positions.get(a.id)).toBeGreaterThanOrEqual(a.position);
    // The order is not the admission order (fair share and priorities reorder it).
    expect(admitted.filter((a, i) => positions.get(a.id) !== i).length).toBeGreaterThan(N / 2);

    await cluster.startWorker();
    await waitDrained(h.redis(), h.prefix, 120_000);
    const done = byStart(
      await readJobs(
        api.url,
        admin,
        admitted.map((a) => a.id),
      ),
    );
    expect(done.filter((j) => j.status !== "complete" || j.attempts !== 1).map((j) => j.id)).toEqual([]);
    // Capacity 1: each job started after the previous one completed, so the start order is strict.
    for (let i = 1; i < done.length; i++)
      expect(Date.parse(done[i]!.started_at!)).toBeGreaterThanOrEqual(Date.parse(done[i - 1]!.completed_at!));
    expect(done.map((j) => positions.get(j.id))).toEqual([...Array(N).keys()]);
    expect(
      await ledgerProblems(
        h.redis(),
        h.prefix,
        TENANTS.map((t) => t.customer),
      ),
    ).toEqual([]);
  }, 150_000);
});
