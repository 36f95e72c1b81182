// Pools on one real redis-server (docs/decisions.md "Pools"): a model of pool `gpu` is admitted
// into that pool (its id names it, every key of it is under the pool's hash tag), a worker with
// WORKER_POOL=gpu runs it while the default pool's worker runs the rest, positions and start order
// are exact within each pool, and GET /queue, GET /ready and /metrics show the pools.
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { BackendConfig } from "../../src/config/backends.js";
import { poolPrefix } from "../../src/core/pools.js";
import { createKeys } from "../../src/queues/keys.js";
import { readSse, startSystem, waitFor, type TestSystem } from "../helpers/system.js";

const METRICS_TOKEN = "metrics-token-for-pool-tests-01";

const backend = (simUrl: string, id: string, model: string): BackendConfig => ({
  id,
  url: simUrl,
  protocol: "kserve-v2",
  engine: "nunchaku",
  capacity: 1,
  models: [model],
  streaming: false,
  timeout_ms: 120_000,
  timeouts: {},
});

const job = (model: string) => ({
  modality: "image",
  family: "flux",
  model,
  task: "t2i",
  format: "512",
  prompt: "a lighthouse",
});

let dir: string;
let poolsFile: string;

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), "rg-pools-"));
  poolsFile = join(dir, "pools.yaml");
  // YAML: the file may be either (JSON is YAML)
  writeFileSync(poolsFile, "pools:\n  - name: gpu\n    models: [flux/schnell]\n    backends: [gpu-b]\n");
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** Every key of this system (its prefix's tag and its pools' tags) whose name holds `text`. */
async function keysHolding(sys: TestSystem, text: string): Promise<string[]> {
  const out: string[] = [];
  let cursor = "0";
  do {
    const tags = `${sys.redis.prefix.slice(0, -1)}*`; // `{tXXX}` and `{tXXX-<pool>}`
    const [next, keys] = await sys.redis.client.scan(cursor, "MATCH", `${tags}${text}*`, "COUNT", 1000);
    cursor = next;
    out.push(...keys);
  } while (cursor !== "0");
  return out;
}

const tagOf = (key: string) => /^[^{]*\{([^}]+)\}/.exec(key)?.[1];

async function submit(sys: TestSystem, token: string, model: string) {
  const res = await sys.call("/queue", { method: "POST", token, body: JSON.stringify(job(model)) });
  expect(res.status).toBe(202);
  return (await res.json()) as { id: string; position: number };
}

describe("pools without workers: admission and positions", () => {
  let sys: TestSystem;
  let token: string;
  beforeAll(async () => {
    sys = await startSystem({ worker: false, env: { POOLS_FILE: poolsFile } });
    token = await sys.token("alice");
  });
  afterAll(() => sys?.close());

  it("admits each model into its pool, ids naming the pool, positions counting that pool's order alone", async () => {
    const gpu: { id: string; position: number }[] = [];
    const dflt: { id: string; position: number }[] = [];
    for (let i = 0; i < 4; i++) {
      gpu.push(await submit(sys, token, "schnell"));
      dflt.push(await submit(sys, token, "dev"));
    }
    expect(gpu.map((j) => j.position)).toEqual([0, 1, 2, 3]);
    expect(dflt.map((j) => j.position)).toEqual([0, 1, 2, 3]);
    for (const j of gpu) expect(j.id).toMatch(/^j_[A-Za-z0-9]{22}gpu$/);
    for (const j of dflt) expect(j.id).toMatch(/^j_[A-Za-z0-9]{22}$/);
    // GET /jobs finds each in its pool, at the same position
    for (const j of [...gpu, ...dflt]) {
      const res = await sys.call(`/jobs/${j.id}`, { token });
      expect(res.status).toBe(200);
      expect(((await res.json()) as { position: number }).position).toBe(j.position);
    }
    // each pool's jobs under its own tag, and nothing of the gpu pool's jobs under the default's
    const gpuPrefix = poolPrefix(sys.redis.prefix, "gpu");
    const gpuKeys = createKeys(gpuPrefix);
    expect(await sys.redis.client.zcard(gpuKeys.queue)).toBe(4);
    expect(await sys.redis.client.zcard(createKeys(sys.redis.prefix).queue)).toBe(4);
    for (const j of gpu) {
      const keys = await keysHolding(sys, j.id);
      expect(keys.length).toBeGreaterThan(0);
      for (const k of keys) expect(tagOf(k)).toBe(tagOf(gpuPrefix));
    }

    const queue = (await (await sys.call("/queue", { token })).json()) as {
      depth: Record<string, number>;
      pools: Record<string, { depth: Record<string, number> }>;
    };
    expect(queue.depth.normal).toBe(8);
    expect(queue.pools.gpu!.depth.normal).toBe(4);
    expect(queue.pools.default!.depth.normal).toBe(4);

    // cancel goes to the job's pool; an id naming no pool is looked up in the default pool (404)
    expect((await sys.call(`/jobs/${gpu[0]!.id}`, { method: "DELETE", token })).status).toBe(204);
    const after = (await (await sys.call(`/jobs/${gpu[1]!.id}`, { token })).json()) as { position: number };
    expect(after.position).toBe(0);
    expect((await sys.call(`/jobs/${gpu[1]!.id.slice(0, -3)}zzz`, { token })).status).toBe(404);
  });

  it("replays an idempotency key in the pool of its job", async () => {
    const body = JSON.stringify({ ...job("schnell"), idempotency_key: "pool-key-1" });
    const first = await sys.call("/queue", { method: "POST", token, body });
    const again = await sys.call("/queue", { method: "POST", token, body });
    expect(first.status).toBe(202);
    expect(again.status).toBe(202);
    expect(again.headers.get("idempotent-replayed")).toBe("true");
    const a = (await first.json()) as { id: string };
    expect(((await again.json()) as { id: string }).id).toBe(a.id);
    const idem = await keysHolding(sys, ":idem:");
    expect(idem.length).toBe(1);
    expect(tagOf(idem[0]!)).toBe(tagOf(poolPrefix(sys.redis.prefix, "gpu")));
  });
});

describe("pools with a worker each", () => {
  let sys: TestSystem;
  let token: string;
  beforeAll(async () => {
    sys = await startSystem({
      env: { POOLS_FILE: poolsFile, METRICS_TOKEN },
      workerPools: ["default", "gpu"],
      backends: (simUrl) => [backend(simUrl, "gpu-a", "flux/dev"), backend(simUrl, "gpu-b", "flux/schnell")],
    });
    token = await sys.token("bob");
  });
  afterAll(() => sys?.close());

  it("runs each pool's jobs on its own worker, in each pool's order", async () => {
    // slow enough that each pool's single slot builds a queue
    sys.sim.setConfig({ stepMs: 15 });
    const gpu: string[] = [];
    const dflt: string[] = [];
    for (let i = 0; i < 5; i++) {
      gpu.push((await submit(sys, token, "schnell")).id);
      dflt.push((await submit(sys, token, "dev")).id);
    }
    const sse = await sys.call(`/jobs/${gpu.at(-1)!}/events`, { token });
    const events = await readSse(sse, (e) => e.event === "complete" || e.event === "error", 60_000);
    expect(events.at(-1)!.event).toBe("complete");
    const gpuKeys = createKeys(poolPrefix(sys.redis.prefix, "gpu"));
    const dfltKeys = createKeys(sys.redis.prefix);
    const records = async (keys: typeof gpuKeys, ids: string[]) =>
      Promise.all(ids.map((id) => sys.redis.client.hmget(keys.job(id), "status", "started", "backend")));
    await waitFor(async () => (await records(dfltKeys, dflt)).every(([s]) => s === "complete"), 60_000);
    await waitFor(async () => (await records(gpuKeys, gpu)).every(([s]) => s === "complete"), 60_000);
    for (const [ids, keys, backendId] of [
      [gpu, gpuKeys, "gpu-b"],
      [dflt, dfltKeys, "gpu-a"],
    ] as const) {
      const recs = await records(keys, ids);
      expect(recs.every(([, , b]) => b === backendId)).toBe(true);
      const startOrder = ids
        .map((id, i) => ({ id, started: Number(recs[i]![1]) }))
        .sort((a, b) => a.started - b.started)
        .map((j) => j.id);
      expect(startOrder).toEqual(ids);
    }
    // the gpu pool's attempts went through its own BullMQ queue
    const render = await keysHolding(sys, ":render:");
    expect(render.filter((k) => tagOf(k) === tagOf(gpuKeys.prefix)).length).toBeGreaterThan(0);
    sys.sim.setConfig({ stepMs: 2 });
  });

  it("shows the pools in GET /ready and the metrics", async () => {
    const admin = await sys.token("ops", { admin: true });
    const ready = await waitFor(async () => {
      const body = (await (await sys.call("/ready", { token: admin })).json()) as {
        pools?: Record<string, { backends: string[]; workers: number }>;
      };
      return body.pools?.gpu?.workers === 1 && body.pools.default?.workers === 1 ? body : undefined;
    });
    expect(ready.pools!.gpu!.backends).toEqual(["gpu-b"]);
    expect(ready.pools!.default!.backends).toEqual(["gpu-a"]);
    const text = await (
      await sys.call("/metrics", { headers: { authorization: `Bearer ${METRICS_TOKEN}` } })
    ).text();
    expect(text).toMatch(/rg_backend_capacity\{backend="gpu-b",pool="gpu"\} 1/);
    expect(text).toMatch(/rg_backend_capacity\{backend="gpu-a",pool="default"\} 1/);
    expect(text).toMatch(/rg_pipeline_backlog\{queue="outbox",pool="gpu"\}/);
  });
});
