// A tier's max_running across pools on a 3-master Redis Cluster (docs/decisions.md "Pools"): the
// deployment's ledger on one master, two pools on the other two, so no script can touch both. Each
// pool's scheduler runs under the limits as the worker role runs it, and each pool's broker listens
// on the ledger's channel as the worker service does. A tenant with max_running 2 and jobs in both
// pools never has more than 2 running (checked at every step against the pools' own leases); its
// jobs beyond that wait `held`, and a held job of one pool starts when an attempt of the other pool
// ends — that pool's broker is woken by the release, not by its own pool.
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { poolPrefix } from "../../src/core/pools.js";
import { closeRedis, waitReady, type RedisClient } from "../../src/infra/redis.js";
import { createRedisConnector, type RedisConnector } from "../../src/infra/redis-connector.js";
import { createJobStore } from "../../src/queues/job-store.js";
import { createKeys } from "../../src/queues/keys.js";
import type { Attempt } from "../../src/queues/scheduler.js";
import { startCluster, type RedisClusterDeployment } from "../helpers/cluster.js";
import { admitTo, DONE, limitedPools, type LimitedPool, type LimitedPools } from "../helpers/pool-limits.js";
import { uniquePrefix } from "../helpers/redis.js";

const MAX_RUNNING = 2;

let dir: string;
let dep: RedisClusterDeployment;
let connector: RedisConnector;
const opened: RedisClient[] = [];
const prefix = uniquePrefix();

async function connect(profile: "worker" | "subscriber"): Promise<RedisClient> {
  const c = connector.connect(profile, `test-${profile}`);
  opened.push(c);
  await waitReady(c, 10_000);
  return c;
}

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "rg-pool-limits-cluster-"));
  dep = await startCluster(dir, { masters: 3 });
  connector = createRedisConnector(dep.target(), {});
}, 60_000);

afterAll(async () => {
  for (const c of opened) await closeRedis(c);
  await connector?.close();
  await dep?.stop();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe("max_running across pools on a Redis Cluster", () => {
  let lp: LimitedPools;
  let a: LimitedPool;
  let b: LimitedPool;
  let redis: RedisClient;

  /** The tenant's attempts holding a slot, as the pools' own leases say. */
  async function runningInPools(): Promise<number> {
    let n = 0;
    for (const p of [a, b]) n += await redis.zcard(createKeys(p.prefix).lease(p.backends[0]!.id));
    return n;
  }

  /** A worker's dispatch pass in `p`, checking the limit after it. */
  async function dispatch(p: LimitedPool): Promise<Attempt[]> {
    const started = await p.sched.dispatch(4, p.backends);
    expect(await runningInPools()).toBeLessThanOrEqual(MAX_RUNNING);
    return started;
  }

  it("never runs more than max_running at once, and a held job starts when a slot frees in the other pool", async () => {
    redis = await connect("worker");
    // two pool names whose tags the Cluster serves from the two masters the ledger's is not on
    const home = await dep.masterOf(`${prefix}:x`);
    const byPort = new Map<number, string>([[home.port, "default"]]);
    for (let i = 0; byPort.size < 3 && i < 1000; i++) {
      const m = await dep.masterOf(`${poolPrefix(prefix, `q${i}`)}:x`);
      if (!byPort.has(m.port)) byPort.set(m.port, `q${i}`);
    }
    const names = [...byPort.values()].slice(1);
    expect(names).toHaveLength(2);
    lp = limitedPools({ redis, prefix, names, clock: Date.now, graceMs: 600_000 });
    [, a, b] = lp.pools as [LimitedPool, LimitedPool, LimitedPool];

    // each pool's broker on the ledger's channel (worker-service.ts): a permit released anywhere
    const sub = await connect("subscriber");
    let woken = 0;
    sub.on("message", (channel: string) => {
      if (channel !== lp.ledger.keys.limitChannel) return;
      woken += 1;
      // as worker-service.ts does, a failed pass is caught (at teardown the connection closes under
      // one: left unhandled, it failed a CI run)
      b.limits.grantHeld().catch(() => undefined);
      a.limits.grantHeld().catch(() => undefined);
    });
    await sub.subscribe(lp.ledger.keys.limitChannel);

    const limit = { maxRunning: MAX_RUNNING };
    const inA = [a.newId(), a.newId()];
    const inB = [b.newId(), b.newId(), b.newId()];
    for (const id of inA) expect((await admitTo(a, "alice", limit, id)).admitted).toBe(true);
    for (const id of inB) expect((await admitTo(b, "alice", limit, id)).admitted).toBe(true);
    // the ledger's keys and each pool's on three different masters
    const ports = await Promise.all(
      [lp.ledger.keys.limitLedger, createKeys(a.prefix).queue, createKeys(b.prefix).queue].map(
        async (k) => (await dep.masterOf(k)).port,
      ),
    );
    expect(new Set(ports).size).toBe(3);

    // pool a: its jobs are held for want of permits, its broker gets two, they start
    const running: Attempt[] = [];
    for (let i = 0; i < 3 && running.length < 2; i++) running.push(...(await dispatch(a)));
    expect(running.map((r) => r.id).sort()).toEqual([...inA].sort());
    // pool b: every job held, whatever its broker tries (no permit left)
    expect(await dispatch(b)).toEqual([]);
    await b.limits.grantHeld();
    expect(await dispatch(b)).toEqual([]);
    const storeB = createJobStore(redis, b.prefix);
    for (const id of inB) expect((await storeB.read(id))?.held).toBe(true);
    expect(await lp.ledger.counts("alice")).toMatchObject({ running: 2, queued: 3 });

    // an attempt of pool a ends: the release wakes pool b's broker, and one held job of b starts
    const done = running.shift()!;
    expect((await a.sched.finish(done.id, done.token, done.backend, "complete", DONE)).ok).toBe(true);
    // (reads only meanwhile: no broker of pool b runs but the one the channel wakes)
    const anyReleased = async () =>
      (await Promise.all(inB.map((id) => storeB.read(id)))).some((r) => !r?.held);
    while (!(await anyReleased())) await sleep(20);
    expect(woken).toBeGreaterThan(0);
    const next = await dispatch(b);
    expect(next).toHaveLength(1);
    running.push(...next);

    // the rest: each end lets one more start, never more than two at once, until all five are done
    const finished = new Set([done.id]);
    while (finished.size < 5) {
      const r = running.shift();
      if (r) {
        const p = r.id.endsWith(a.name) ? a : b;
        expect((await p.sched.finish(r.id, r.token, r.backend, "complete", DONE)).ok).toBe(true);
        finished.add(r.id);
      } else {
        await sleep(20);
      }
      for (const p of [a, b]) running.push(...(await dispatch(p)));
      expect(running.length).toBeLessThanOrEqual(MAX_RUNNING);
    }
    expect(await runningInPools()).toBe(0);
    expect(await lp.ledger.counts("alice")).toEqual({ queued: 0, running: 0, all: 0 });
    expect(await redis.zcard(lp.ledger.keys.limitLedger)).toBe(0);
  });
});
