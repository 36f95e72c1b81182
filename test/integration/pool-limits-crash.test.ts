// Crashes between the deployment-wide ledger's step and a pool's step (docs/decisions.md "Pools"), on
// one real redis-server with a clock the test moves: each leaves only a stricter state (the ledger
// counts a place or permit that no job holds, so a submit is refused or a held job waits), and the
// sweeper repairs it once it is POOL_LIMITS_GRACE_MS old — never before — fencing the pool step it
// was taken for, so that step can no longer happen late.
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { attemptId } from "../../src/core/attempt-id.js";
import { limitEntry } from "../../src/queues/limits-ledger.js";
import { createJobStore } from "../../src/queues/job-store.js";
import { createKeys } from "../../src/queues/keys.js";
import { admitTo, DONE, limitedPools, type LimitedPools } from "../helpers/pool-limits.js";
import { testRedis, type TestRedis } from "../helpers/redis.js";

const GRACE_MS = 10_000;

let r: TestRedis;
let now: number;
let lp: LimitedPools;

beforeEach(() => {
  r = testRedis();
  now = 1_000_000;
  lp = limitedPools({
    redis: r.client,
    prefix: r.prefix,
    names: ["gpu"],
    clock: () => now,
    graceMs: GRACE_MS,
  });
});
afterEach(() => r.cleanup());

const dflt = () => lp.pools[0]!;
const gpu = () => lp.pools[1]!;

/** The customer's queued jobs in every pool (their tenant records), as the pools hold them. */
async function queuedInPools(customer: string): Promise<number> {
  let n = 0;
  for (const p of lp.pools)
    n += Number((await r.client.hget(createKeys(p.prefix).tenant(customer), "q")) ?? 0);
  return n;
}

describe("a crash between the ledger's step and the pool's", () => {
  it("an admission whose API died after taking its place: refused meanwhile, released after the grace, its id voided", async () => {
    expect((await admitTo(gpu(), "alice", { maxQueued: 2 })).admitted).toBe(true);
    // the API took the place of a default-pool job, then died before the pool's admit
    const lost = dflt().newId();
    expect(await lp.ledger.take("alice", lost, 2, -1, now)).toEqual({ ok: true });
    // stricter: the place counts though no job holds it
    expect(await admitTo(gpu(), "alice", { maxQueued: 2 })).toMatchObject({
      reason: "queue_full",
      scope: "tenant",
    });
    expect(await queuedInPools("alice")).toBe(1);
    // not before the grace
    now += GRACE_MS - 1;
    expect(await lp.sweeper.sweep()).toBe(0);
    expect(await admitTo(gpu(), "alice", { maxQueued: 2 })).toMatchObject({ reason: "queue_full" });
    now += 1;
    expect(await lp.sweeper.sweep()).toBe(1);
    // the admit of that id, delivered late, stores nothing; a new submit has the place
    expect(await admitTo(dflt(), "alice", { maxQueued: 2 }, lost)).toMatchObject({
      admitted: false,
      reason: "voided",
    });
    expect((await admitTo(gpu(), "alice", { maxQueued: 2 })).admitted).toBe(true);
    expect(await lp.ledger.counts("alice")).toMatchObject({ queued: 2 });
    expect(await queuedInPools("alice")).toBe(2);
  });

  it("a cancel whose process died before the ledger's release: refused meanwhile, released by the next sweep", async () => {
    const first = gpu().newId();
    expect((await admitTo(gpu(), "alice", { maxQueued: 2 }, first)).admitted).toBe(true);
    expect((await admitTo(dflt(), "alice", { maxQueued: 2 })).admitted).toBe(true);
    // the pool's step alone (the process died before draining lim:gone)
    expect(await gpu().bare.cancel(first, "alice")).toBe("was_queued");
    expect(await r.client.llen(gpu().limits.keys.limitGone)).toBe(1);
    expect(await admitTo(dflt(), "alice", { maxQueued: 2 })).toMatchObject({ reason: "queue_full" });
    // the pool reported it in the same step: the next pass releases it, grace or not
    await lp.sweeper.sweep();
    expect(await r.client.llen(gpu().limits.keys.limitGone)).toBe(0);
    expect((await admitTo(dflt(), "alice", { maxQueued: 2 })).admitted).toBe(true);
    expect((await lp.ledger.counts("alice")).queued).toBe(await queuedInPools("alice"));
  });

  it("a permit claimed by a broker that died before applying it: held jobs wait, then it is fenced and released", async () => {
    const limit = { maxRunning: 1 };
    const early = dflt().newId();
    expect((await admitTo(dflt(), "alice", limit, early)).admitted).toBe(true);
    // the default pool's job is held for want of a permit (its broker is not run: bare dispatch)
    expect(await dflt().bare.dispatch(4, dflt().backends)).toEqual([]);
    // a broker claimed its permit and died before applying it
    const [permit] = await lp.ledger.claim("alice", 1, [early], now);
    expect(permit).toBeDefined();
    // stricter: gpu's job is held too, though nothing of alice runs
    const late = gpu().newId();
    expect((await admitTo(gpu(), "alice", limit, late)).admitted).toBe(true);
    expect(await gpu().sched.dispatch(4, gpu().backends)).toEqual([]);
    expect(await gpu().sched.dispatch(4, gpu().backends)).toEqual([]);
    expect((await createJobStore(r.client, gpu().prefix).read(late))?.held).toBe(true);
    now += GRACE_MS;
    expect(await lp.sweeper.sweep()).toBe(1);
    // the dead broker's permit can no longer be applied
    expect(await r.client.hget(createKeys(dflt().prefix).job(early), "rfence")).toBe(permit!.split("@")[1]);
    // a broker run now gives the permit to one held job, which starts; never two at once
    await gpu().limits.grantHeld();
    await dflt().limits.grantHeld();
    const started = [
      ...(await gpu().sched.dispatch(4, gpu().backends)),
      ...(await dflt().sched.dispatch(4, dflt().backends)),
    ];
    expect(started).toHaveLength(1);
    expect((await lp.ledger.counts("alice")).running).toBe(1);
  });

  it("a worker that died after reserving a retry's place: kept while its attempt may still put the job back", async () => {
    const id = gpu().newId();
    expect((await admitTo(gpu(), "alice", { maxQueued: 1 }, id)).admitted).toBe(true);
    const [a] = await gpu().sched.dispatch(1, gpu().backends);
    expect(a?.id).toBe(id);
    expect((await lp.ledger.counts("alice")).queued).toBe(0);
    // the worker reserved the place of the retry, then died before settling the attempt
    await lp.ledger.add([limitEntry("q", "alice", attemptId(a!))], now);
    now += GRACE_MS;
    expect(await lp.sweeper.sweep()).toBe(0);
    // its lease expires: the reaper puts the job back with that very place
    now += 5_000;
    expect(await gpu().sched.reap()).toBe(1);
    expect(await queuedInPools("alice")).toBe(1);
    now += GRACE_MS;
    expect(await lp.sweeper.sweep()).toBe(0);
    expect((await lp.ledger.counts("alice")).queued).toBe(1);
    // it starts and completes: nothing left anywhere
    const [b] = await gpu().sched.dispatch(1, gpu().backends);
    expect((await gpu().sched.finish(b!.id, b!.token, b!.backend, "complete", DONE)).ok).toBe(true);
    expect(await lp.ledger.counts("alice")).toEqual({ queued: 0, running: 0, all: 0 });
    expect(await r.client.zcard(lp.ledger.keys.limitLedger)).toBe(0);
  });
});
