// Review of the deployment-wide limits across pools (docs/decisions.md "Pools"): races between a
// pool's steps and the ledger's that the first tests did not cover, on one real redis-server with a
// clock the test moves. Each states what the ledger must count against what the pools hold.
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { createKeys } from "../../src/queues/keys.js";
import { defineScripts } from "../../src/queues/scripts.js";
import { admitTo, DONE, limitedPools, type LimitedPools } from "../helpers/pool-limits.js";
import { testRedis, type TestRedis } from "../helpers/redis.js";

const GRACE_MS = 10_000;
const LEASE_MS = 5_000;

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
    leaseTtlMs: LEASE_MS,
  });
});
afterEach(() => r.cleanup());

const dflt = () => lp.pools[0]!;
const gpu = () => lp.pools[1]!;

/** The customer's running attempts in every pool (their tenant records). */
async function runningInPools(customer: string): Promise<number> {
  let n = 0;
  for (const p of lp.pools)
    n += Number((await r.client.hget(createKeys(p.prefix).tenant(customer), "r")) ?? 0);
  return n;
}

/** The customer's queued jobs in every pool (their tenant records), as the pools hold them. */
async function queuedInPools(customer: string): Promise<number> {
  let n = 0;
  for (const p of lp.pools)
    n += Number((await r.client.hget(createKeys(p.prefix).tenant(customer), "q")) ?? 0);
  return n;
}

const RETRY = { error: { code: "backend_error", message: "boom", retriable: true } };

describe("the ledger against the pools", () => {
  it.each(["retry", "busy"] as const)(
    "a lost worker's late %s, after the reaper put its job back, leaves the job's place counted",
    async (outcome) => {
      const id = gpu().newId();
      expect((await admitTo(gpu(), "alice", { maxQueued: 1 }, id)).admitted).toBe(true);
      const [a] = await gpu().sched.dispatch(1, gpu().backends);
      expect(a?.id).toBe(id);
      // the worker stalls past its lease: the reaper puts the job back with the attempt's place
      now += LEASE_MS + 1;
      expect(await gpu().sched.reap()).toBe(1);
      expect(await queuedInPools("alice")).toBe(1);
      expect((await lp.ledger.counts("alice")).queued).toBe(1);
      // the worker wakes up and settles its attempt: stale, the job is not its any more
      const late = await gpu().sched.finish(a!.id, a!.token, a!.backend, outcome, RETRY);
      expect(late.ok).toBe(false);
      // the job still holds its place: the ledger counts it, and alice is at max_queued 1
      expect((await lp.ledger.counts("alice")).queued).toBe(await queuedInPools("alice"));
      expect(await admitTo(gpu(), "alice", { maxQueued: 1 })).toMatchObject({ reason: "queue_full" });
      // and once it runs and completes, nothing is left anywhere
      const [b] = await gpu().sched.dispatch(1, gpu().backends);
      expect((await gpu().sched.finish(b!.id, b!.token, b!.backend, "complete", DONE)).ok).toBe(true);
      expect(await lp.ledger.counts("alice")).toEqual({ queued: 0, running: 0, all: 0 });
      expect(await r.client.zcard(lp.ledger.keys.limitLedger)).toBe(0);
    },
  );

  it("a lost worker's late retry, after its job started again, leaves no place behind", async () => {
    const id = gpu().newId();
    expect((await admitTo(gpu(), "alice", { maxQueued: 1 }, id)).admitted).toBe(true);
    const [a] = await gpu().sched.dispatch(1, gpu().backends);
    now += LEASE_MS + 1;
    expect(await gpu().sched.reap()).toBe(1);
    const [b] = await gpu().sched.dispatch(1, gpu().backends);
    expect(b?.id).toBe(id);
    expect((await gpu().sched.finish(a!.id, a!.token, a!.backend, "retry", RETRY)).ok).toBe(false);
    // nothing of alice is queued: the ledger says so at once (no leftover for the sweeper)
    expect(await queuedInPools("alice")).toBe(0);
    expect((await lp.ledger.counts("alice")).queued).toBe(0);
    expect((await admitTo(gpu(), "alice", { maxQueued: 1 })).admitted).toBe(true);
  });

  it("a permit's grant delivered twice (a resent call) applies it once: max_running holds", async () => {
    const limit = { maxRunning: 1 };
    const x = gpu().newId();
    const y = gpu().newId();
    expect((await admitTo(gpu(), "alice", limit, x)).admitted).toBe(true);
    expect((await admitTo(gpu(), "alice", limit, y)).admitted).toBe(true);
    // both held for want of a permit (the pool's own dispatch, without its broker)
    expect(await gpu().bare.dispatch(4, gpu().backends)).toEqual([]);
    // a broker claims x's permit and applies it; x starts with it
    const [permit] = await lp.ledger.claim("alice", 1, [x], now);
    const run = defineScripts(r.client, gpu().prefix);
    const route = createKeys(gpu().prefix).queue;
    expect(await run("lim_grant", route, [permit!])).toEqual([]);
    const [a] = await gpu().sched.dispatch(4, gpu().backends);
    expect(a?.id).toBe(x);
    // x's attempt fails and is retried: its permit ends, x is held again, y gets the freed permit
    expect((await gpu().sched.finish(a!.id, a!.token, a!.backend, "retry", RETRY)).ok).toBe(true);
    const [b] = await gpu().sched.dispatch(4, gpu().backends);
    expect(b?.id).toBe(y);
    expect((await lp.ledger.counts("alice")).running).toBe(1);
    // the first grant, resent (ioredis resends an unanswered command after a reconnect), arrives late
    expect(await run("lim_grant", route, [permit!])).toEqual([permit]);
    // x must not start: y holds alice's only permit
    expect(await gpu().sched.dispatch(4, gpu().backends)).toEqual([]);
  });

  it.each(["retry", "busy", "lost"] as const)(
    "a job put back after a %s, its tenant's last in its pool, still needs a permit: max_running holds",
    async (outcome) => {
      const limit = { maxRunning: 1 };
      const x = gpu().newId();
      const y = dflt().newId();
      expect((await admitTo(gpu(), "alice", limit, x)).admitted).toBe(true);
      expect((await admitTo(dflt(), "alice", limit, y)).admitted).toBe(true);
      // x gets alice's only permit and starts (held first, then granted by the broker)
      expect(await gpu().sched.dispatch(4, gpu().backends)).toEqual([]);
      const [a] = await gpu().sched.dispatch(4, gpu().backends);
      expect(a?.id).toBe(x);
      expect(await dflt().sched.dispatch(4, dflt().backends)).toEqual([]);
      // x goes back to the queue: its permit ends, and y gets it and starts
      if (outcome === "lost") {
        // its worker stopped answering: the reaper puts it back
        now += LEASE_MS + 1;
        expect(await gpu().sched.reap()).toBe(1);
      } else {
        const back = await gpu().sched.finish(a!.id, a!.token, a!.backend, outcome, RETRY);
        expect(back).toMatchObject({ ok: true, status: "queued" });
      }
      await dflt().limits.grantHeld();
      const [b] = await dflt().sched.dispatch(4, dflt().backends);
      expect(b?.id).toBe(y);
      // x must wait for a permit: y holds alice's only one
      expect(await gpu().sched.dispatch(4, gpu().backends)).toEqual([]);
      expect(await runningInPools("alice")).toBe(1);
    },
  );
});
