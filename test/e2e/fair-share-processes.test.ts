// Fair share across processes (issue 9 §6 g): two API processes and two worker processes on one
// Redis, the workers sharing one backend of capacity 1 (its slot lease is the only one).
//  1. 120 jobs of 6 tenants of mixed weights and priorities, each submitted through either API: both
//     APIs report the same positions, a permutation of 0…119, and the i-th job to start (whichever
//     worker starts it) is the job whose position was i.
//  2. Tenant A floods 400 jobs through one API while the workers run them; tenant B's 10 jobs,
//     submitted at once through the other API, are ordered at the current virtual time (B's first at
//     position ≤ 2) and all complete while A's flood still waits.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  E2eHarness,
  call,
  foxRequest,
  token,
  until,
  waitTerminal,
  type CliProcess,
  type Gateway,
} from "../helpers/processes.js";
import {
  byStart,
  fairCluster,
  ledgerProblems,
  mixedJob,
  readJobs,
  tenantCounts,
  waitDrained,
  writeTiersFile,
  type FairCluster,
  type OrderTenant,
} from "../helpers/fair-share.js";

const N = 120;
const WEIGHTS = [1, 2, 3, 5, 1, 2];
const TENANTS: OrderTenant[] = WEIGHTS.map((w, i) => ({ customer: `tenant-${i}`, tier: `w${w}` }));

let h: E2eHarness;
let cluster: FairCluster;
let apis: Gateway[];
let workers: CliProcess[] = [];
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
  // capacity 1: the backend's one slot, each worker process with one slot of its own
  cluster = await fairCluster(h, { tiersFile: tiers.file, capacity: 1, stepMs: 2 });
  apis = [await cluster.startApi("api 1"), await cluster.startApi("api 2")];
}, 120_000);

afterAll(async () => {
  await h?.cleanup();
});

describe("fair share across two API and two worker processes", () => {
  it("positions agree between the APIs and equal the start order of jobs run by two workers", async () => {
    const bearers = new Map<string, string>();
    for (const t of TENANTS) bearers.set(t.customer, await token(t.customer, { tier: t.tier, tiers: names }));
    const ids: string[] = new Array<string>(N);
    let next = 0;
    const lane = async () => {
      while (next < N) {
        const i = next++;
        const { tenant, body } = mixedJob(i, TENANTS);
        const res = await call(apis[i % 2]!.url, "/queue", {
          method: "POST",
          token: bearers.get(tenant.customer)!,
          body,
        });
        const created = (await res.json()) as { id: string };
        expect(res.status, JSON.stringify(created)).toBe(202);
        ids[i] = created.id;
      }
    };
    await Promise.all(Array.from({ length: 4 }, lane));

    const admin = await token("operator", { tier: "pro", tiers: names, admin: true });
    const [one, two] = await Promise.all(apis.map((api) => readJobs(api.url, admin, ids)));
    const positions = new Map(one!.map((j) => [j.id, j.position!]));
    expect(two!.map((j) => j.position)).toEqual(one!.map((j) => j.position));
    expect([...positions.values()].sort((a, b) => a - b)).toEqual([...Array(N).keys()]);

    workers = [await cluster.startWorker("worker 1"), await cluster.startWorker("worker 2")];
    await waitDrained(h.redis(), h.prefix, 90_000);
    const done = byStart(await readJobs(apis[1]!.url, admin, ids));
    expect(done.filter((j) => j.status !== "complete" || j.attempts !== 1).map((j) => j.id)).toEqual([]);
    expect(done.map((j) => positions.get(j.id))).toEqual([...Array(N).keys()]);
    expect(
      await ledgerProblems(
        h.redis(),
        h.prefix,
        TENANTS.map((t) => t.customer),
      ),
    ).toEqual([]);
  }, 120_000);

  it("a flood through one API does not hold back another tenant's jobs submitted through the other", async () => {
    expect(workers.length).toBe(2);
    const client = h.redis();
    const a = await token("flood-a", { tier: "w1", tiers: names });
    const b = await token("tenant-b", { tier: "w1", tiers: names });
    const submit = async (api: Gateway, bearer: string, prompt: string) => {
      const res = await call(api.url, "/queue", {
        method: "POST",
        token: bearer,
        body: foxRequest(prompt, 25),
      });
      const created = (await res.json()) as { id: string; position: number; created_at: string };
      expect(res.status, JSON.stringify(created)).toBe(202);
      return created;
    };
    // Each API's capacity snapshot shows the workers (an API serves its last snapshot while it
    // refreshes it, and the second API was last asked before the workers ran: its admissions would be
    // costed with no measured service time and one slot).
    for (const api of apis)
      await until(
        "the API's snapshot shows the workers",
        async () => {
          const r = await call(api.url, "/queue", { token: a });
          return (
            ((await r.json()) as { eta_seconds: Record<string, number> }).eta_seconds.normal !== undefined
          );
        },
        10_000,
      );
    let next = 0;
    await Promise.all(
      Array.from({ length: 8 }, async () => {
        while (next < 400) await submit(apis[0]!, a, `flood ${next++}`);
      }),
    );
    const bJobs = await Promise.all(Array.from({ length: 10 }, (_, i) => submit(apis[1]!, b, `b ${i}`)));
    bJobs.sort((x, y) => Date.parse(x.created_at) - Date.parse(y.created_at) || x.position - y.position);
    expect(bJobs[0]!.position).toBeLessThanOrEqual(2);
    const finished = await waitTerminal(
      apis[1]!.url,
      b,
      bJobs.map((j) => j.id),
      60_000,
    );
    expect(finished.map((j) => j.status)).toEqual(Array<string>(10).fill("complete"));
    expect((await tenantCounts(client, h.prefix, "flood-a")).q).toBeGreaterThan(200);
    expect(await ledgerProblems(client, h.prefix, ["flood-a", "tenant-b"])).toEqual([]);
  }, 90_000);
});
