// Pools on a 3-master Redis Cluster (issue 15 items 3 and 4; docs/decisions.md "Pools"): three pools
// whose hash tags the Cluster serves from three different masters, `start --roles api` and one
// `start --roles worker` per pool (WORKER_POOL, one slot each) on the simulator. Jobs queued before
// the workers run get exact positions within their pool, each pool's worker starts its jobs in that
// order, all complete, and every key of a pool is under the pool's tag on the master serving it.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { E2eHarness, call, token, waitForModel, waitTerminal, type Gateway } from "../helpers/processes.js";
import { startCluster, type RedisClusterDeployment } from "../helpers/cluster.js";
import { poolPrefix } from "../../src/core/pools.js";

const PER_POOL = 8;
/** Each pool's model and backend (one catalogue model per pool). */
const MODELS = ["flux/dev", "flux/dev2", "flux/schnell"] as const;

let h: E2eHarness;
let dep: RedisClusterDeployment;
let api: Gateway;
let bearer: string;
let env: Record<string, string | undefined>;
/** The pools' names, chosen so that their tags hash to three different masters. */
let names: string[] = [];

const tagOf = (key: string) => /^[^{]*\{([^}]+)\}/.exec(key)?.[1];

beforeAll(async () => {
  h = new E2eHarness();
  dep = await startCluster(h.tempDir(), { masters: 3 });
  // The first names whose tags land on three different masters (the prefix is random per run).
  const byPort = new Map<number, string>();
  for (let i = 0; byPort.size < 3 && i < 1000; i++) {
    const master = await dep.masterOf(`${poolPrefix(h.prefix, `p${i}`)}:x`);
    if (!byPort.has(master.port)) byPort.set(master.port, `p${i}`);
  }
  names = [...byPort.values()];
  expect(names.length).toBe(3);
  const sim = await h.simBackend({ env: { SIM_STEP_MS: "2", SIM_CAPACITY: "32" } });
  env = {
    REDIS_URL: undefined,
    ...dep.env(),
    BACKENDS_FILE: h.backendsFile(
      MODELS.map((m, i) => ({ id: `gpu-${i}`, url: sim.url, capacity: 1, models: [m] })),
    ),
    POOLS_FILE: h.writeFile(
      "pools.json",
      JSON.stringify({
        pools: names.map((name, i) => ({ name, models: [MODELS[i]], backends: [`gpu-${i}`] })),
      }),
    ),
    WORKER_CONCURRENCY: "1",
    AGING_BOUND_S: "86400",
  };
  api = await h.start("api", { name: "api", env });
  bearer = await token("pools", { tier: "enterprise" });
}, 120_000);

afterAll(async () => {
  await h?.cleanup();
  await dep?.stop();
});

describe("three pools on a 3-master Redis Cluster", () => {
  it("keeps each pool on its master, with exact positions and start order per pool", async () => {
    const ids: string[][] = names.map(() => []);
    for (let i = 0; i < PER_POOL; i++) {
      for (const [p, fm] of MODELS.entries()) {
        const [family, model] = fm.split("/");
        const res = await call(api.url, "/queue", {
          method: "POST",
          token: bearer,
          body: {
            modality: "image",
            family,
            model,
            task: "t2i",
            format: "512",
            prompt: `job ${i}`,
            steps: 2,
          },
        });
        const body = (await res.json()) as { id: string; position: number };
        expect(res.status, JSON.stringify(body)).toBe(202);
        expect(body.position, `202 position of job ${i} of pool ${names[p]}`).toBe(i);
        expect(body.id.endsWith(names[p]!)).toBe(true);
        ids[p]!.push(body.id);
      }
    }
    for (const name of names) {
      await h.start("worker", { wait: "none", name: `worker ${name}`, env: { ...env, WORKER_POOL: name } });
    }
    for (const fm of MODELS) await waitForModel(api.url, bearer, fm);
    for (const [p, poolIds] of ids.entries()) {
      const jobs = await waitTerminal(api.url, bearer, poolIds, 90_000);
      expect(jobs.filter((j) => j.status !== "complete").map((j) => `${j.id} ${j.status}`)).toEqual([]);
      // one slot per pool: its jobs started one after the other, in position order
      const byStart = [...jobs].sort((a, b) => Date.parse(a.started_at!) - Date.parse(b.started_at!));
      expect(
        byStart.map((j) => poolIds.indexOf(j.id)),
        `start order of pool ${names[p]}`,
      ).toEqual([...Array(PER_POOL).keys()]);
    }

    // Every key on every master is under a tag of this deployment and on the master serving that tag;
    // each pool's keys (its jobs, order, BullMQ queue) are on its own master.
    const masterOfTag = new Map<string, number>();
    for (const pool of ["default", ...names]) {
      const tag = tagOf(poolPrefix(h.prefix, pool))!;
      masterOfTag.set(tag, (await dep.masterOf(`{${tag}}`)).port);
    }
    const perPool = new Map<string, number>();
    for (const node of await dep.masters()) {
      for (const key of await dep.keysOn(node)) {
        const tag = tagOf(key) ?? "";
        expect(masterOfTag.get(tag), `key ${key}`).toBe(node.port);
        perPool.set(tag, (perPool.get(tag) ?? 0) + 1);
      }
    }
    for (const [p, name] of names.entries()) {
      const tag = tagOf(poolPrefix(h.prefix, name))!;
      expect(perPool.get(tag) ?? 0).toBeGreaterThan(PER_POOL);
      const keys = await dep.keysOn(await dep.masterOf(`{${tag}}`));
      for (const id of ids[p]!) expect(keys.some((k) => k.includes(id) && tagOf(k) === tag)).toBe(true);
    }
    // the three pools are on three different masters
    expect(new Set(names.map((n) => masterOfTag.get(tagOf(poolPrefix(h.prefix, n))!))).size).toBe(3);
  });
});
