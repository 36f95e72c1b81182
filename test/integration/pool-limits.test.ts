// Deployment-wide tier limits across pools (docs/decisions.md "Pools"), on one real redis-server: a
// tenant at its tier's `max_queued` across two pools is refused 429 `queue_full` whatever pool it
// submits to (a pool's own count would admit it: the test fails without the ledger), QUEUE_MAX holds
// across the pools, two API processes taking concurrent submits of several tenants to both pools
// never admit past either limit, and a cancel in one pool frees a place for a submit to the other.
// With a worker per pool, a tenant with max_running 2 never has more than 2 running over both pools
// (each pool alone would run 2), the others wait held, and all complete.
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { DEFAULT_TIERS } from "../../src/core/tiers.js";
import { poolPrefix } from "../../src/core/pools.js";
import { createKeys } from "../../src/queues/keys.js";
import type { BackendConfig } from "../../src/config/backends.js";
import { startSystem, waitFor, type TestSystem } from "../helpers/system.js";

const TENANT_MAX = 3;
const QUEUE_MAX = 7;
const MAX_RUNNING = 2;

const job = (model: string) => ({
  modality: "image",
  family: "flux",
  model,
  task: "t2i",
  format: "512",
  prompt: "a lighthouse",
});

let dir: string;
let env: Record<string, string>;

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), "rg-pool-limits-"));
  const poolsFile = join(dir, "pools.yaml");
  writeFileSync(
    poolsFile,
    "pools:\n  - name: gpu\n    models: [flux/schnell]\n    backends: [sim-nunchaku]\n",
  );
  const tiersFile = join(dir, "tiers.json");
  writeFileSync(
    tiersFile,
    JSON.stringify({
      ...DEFAULT_TIERS,
      pro: { ...DEFAULT_TIERS.pro, max_queued: TENANT_MAX, submits_per_min: null },
    }),
  );
  env = { POOLS_FILE: poolsFile, TIERS_FILE: tiersFile, QUEUE_MAX: String(QUEUE_MAX) };
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

async function post(sys: TestSystem, token: string, model: string, extra: Record<string, unknown> = {}) {
  const res = await sys.call("/queue", {
    method: "POST",
    token,
    body: JSON.stringify({ ...job(model), ...extra }),
  });
  return { status: res.status, headers: res.headers, body: (await res.json()) as Record<string, any> };
}

function expectQueueFull(r: Awaited<ReturnType<typeof post>>, scope: "tenant" | "all", queued: number) {
  expect(r.status, JSON.stringify(r.body)).toBe(429);
  expect(r.body.error).toBe("queue_full");
  expect(r.body.details).toMatchObject({ scope, queued });
  expect(r.headers.get("retry-after")).toMatch(/^[1-9][0-9]*$/);
}

/** Jobs queued in each pool (the pools' own orders: what really waits). */
async function queuedPerPool(sys: TestSystem): Promise<number[]> {
  return Promise.all(
    ["default", "gpu"].map((p) => sys.redis.client.zcard(createKeys(poolPrefix(sys.redis.prefix, p)).queue)),
  );
}

/** A customer's queued jobs over both pools (the pools' tenant records). */
async function tenantQueued(sys: TestSystem, customer: string): Promise<number> {
  let n = 0;
  for (const p of ["default", "gpu"]) {
    n += Number(
      (await sys.redis.client.hget(createKeys(poolPrefix(sys.redis.prefix, p)).tenant(customer), "q")) ?? 0,
    );
  }
  return n;
}

describe("deployment-wide queued limits across pools", () => {
  let sys: TestSystem;
  beforeAll(async () => {
    sys = await startSystem({ worker: false, env });
  });
  afterAll(() => sys?.close());

  it("refuses a tenant at max_queued across two pools with 429 queue_full, in either pool", async () => {
    const alice = await sys.token("alice");
    expect((await post(sys, alice, "schnell")).status).toBe(202);
    expect((await post(sys, alice, "schnell")).status).toBe(202);
    const third = await post(sys, alice, "dev");
    expect(third.status).toBe(202);
    // two queued in pool gpu, one in the default pool: each pool alone is below the limit
    expect(await queuedPerPool(sys)).toEqual([1, 2]);
    expectQueueFull(await post(sys, alice, "dev"), "tenant", TENANT_MAX);
    expectQueueFull(await post(sys, alice, "schnell"), "tenant", TENANT_MAX);
    expect(await tenantQueued(sys, "alice")).toBe(TENANT_MAX);
    // a cancel in the default pool frees a place for a submit to pool gpu
    expect((await sys.call(`/jobs/${third.body.id}`, { method: "DELETE", token: alice })).status).toBe(204);
    expect((await post(sys, alice, "schnell")).status).toBe(202);
    expectQueueFull(await post(sys, alice, "dev"), "tenant", TENANT_MAX);
    expect(await queuedPerPool(sys)).toEqual([0, 3]);
  });

  it("holds QUEUE_MAX across the pools", async () => {
    // alice holds 3; bob and carol add 4 over both pools, then everyone is refused
    const bob = await sys.token("bob");
    const carol = await sys.token("carol");
    expect((await post(sys, bob, "dev")).status).toBe(202);
    expect((await post(sys, bob, "schnell")).status).toBe(202);
    expect((await post(sys, carol, "dev")).status).toBe(202);
    expect((await post(sys, carol, "dev")).status).toBe(202);
    expectQueueFull(await post(sys, carol, "schnell"), "all", QUEUE_MAX);
    expectQueueFull(await post(sys, bob, "dev"), "all", QUEUE_MAX);
    const [dflt = 0, gpu = 0] = await queuedPerPool(sys);
    expect(dflt + gpu).toBe(QUEUE_MAX);
  });
});

describe("concurrent submits from two API processes to different pools", () => {
  let a: TestSystem;
  let b: TestSystem;
  beforeAll(async () => {
    a = await startSystem({ worker: false, env });
    // a second API on the same keys: its own connections, scripts and pools
    b = await startSystem({ worker: false, env: { ...env, REDIS_PREFIX: a.redis.prefix } });
  });
  afterAll(async () => {
    await b?.close();
    await a?.close();
  });

  it("never admits past a tenant's max_queued or QUEUE_MAX", async () => {
    const customers = ["c1", "c2", "c3", "c4"];
    const tokens = await Promise.all(customers.map((c) => a.token(c)));
    // 8 submits per customer at once, alternating API process and pool: 32 requests in flight
    const sent = customers.flatMap((c, i) =>
      Array.from({ length: 8 }, (_, k) =>
        post(k % 2 === 0 ? a : b, tokens[i]!, k % 4 < 2 ? "schnell" : "dev").then((r) => ({ c, r })),
      ),
    );
    const results = await Promise.all(sent);
    const accepted = new Map<string, number>();
    for (const { c, r } of results) {
      expect([202, 429], JSON.stringify(r.body)).toContain(r.status);
      if (r.status === 202) accepted.set(c, (accepted.get(c) ?? 0) + 1);
      else expect(r.body.error).toBe("queue_full");
    }
    let total = 0;
    for (const c of customers) {
      expect(accepted.get(c) ?? 0).toBeLessThanOrEqual(TENANT_MAX);
      expect(await tenantQueued(a, c)).toBe(accepted.get(c) ?? 0);
      total += accepted.get(c) ?? 0;
    }
    // 4 × 3 places wanted, 7 for everyone: exactly QUEUE_MAX admitted, and queued in the pools
    expect(total).toBe(QUEUE_MAX);
    const [dflt = 0, gpu = 0] = await queuedPerPool(a);
    expect(dflt + gpu).toBe(QUEUE_MAX);
  });
});

describe("max_running across pools, a worker per pool", () => {
  let sys: TestSystem;
  const backend = (simUrl: string, id: string, model: string): BackendConfig => ({
    id,
    url: simUrl,
    protocol: "kserve-v2",
    engine: "nunchaku",
    capacity: 4,
    models: [model],
    streaming: false,
    timeout_ms: 120_000,
    timeouts: {},
  });
  beforeAll(async () => {
    const poolsFile = join(dir, "pools-run.yaml");
    writeFileSync(poolsFile, "pools:\n  - name: gpu\n    models: [flux/schnell]\n    backends: [gpu-b]\n");
    const tiersFile = join(dir, "tiers-run.json");
    writeFileSync(
      tiersFile,
      JSON.stringify({
        ...DEFAULT_TIERS,
        pro: { ...DEFAULT_TIERS.pro, max_running: MAX_RUNNING, max_queued: null, submits_per_min: null },
      }),
    );
    sys = await startSystem({
      env: { POOLS_FILE: poolsFile, TIERS_FILE: tiersFile, SIM_CAPACITY: "16" },
      workerPools: ["default", "gpu"],
      backends: (simUrl) => [backend(simUrl, "gpu-a", "flux/dev"), backend(simUrl, "gpu-b", "flux/schnell")],
    });
  });
  afterAll(() => sys?.close());

  /** Running, queued and held jobs of `customer` over both pools (their tenant records). */
  async function counts(customer: string) {
    const out = { r: 0, q: 0, h: 0 };
    for (const p of ["default", "gpu"]) {
      const [r, q, h] = await sys.redis.client.hmget(
        createKeys(poolPrefix(sys.redis.prefix, p)).tenant(customer),
        "r",
        "q",
        "h",
      );
      out.r += Number(r ?? 0);
      out.q += Number(q ?? 0);
      out.h += Number(h ?? 0);
    }
    return out;
  }

  it("never runs more than max_running over both pools; the rest wait held and all complete", async () => {
    // long enough jobs that every job is either running or held for a while
    sys.sim.setConfig({ stepMs: 40 });
    const dave = await sys.token("dave");
    const ids: string[] = [];
    for (let i = 0; i < 4; i++) {
      for (const model of ["schnell", "dev"]) {
        const r = await post(sys, dave, model, { steps: 20 });
        expect(r.status).toBe(202);
        ids.push(r.body.id as string);
      }
    }
    let most = 0;
    let settled = false;
    await waitFor(async () => {
      const c = await counts("dave");
      most = Math.max(most, c.r);
      // every job not done is running or held: each pool's worker has done what it can
      if (c.r > 0 && c.q === c.h && c.h > 0) settled = true;
      const done = await Promise.all(
        ids.map(
          async (id) => ((await (await sys.call(`/jobs/${id}`, { token: dave })).json()) as any).status,
        ),
      );
      return done.every((s) => s === "complete");
    }, 120_000);
    expect(settled).toBe(true);
    expect(most).toBe(MAX_RUNNING);
    sys.sim.setConfig({ stepMs: 2 });
  });
});
