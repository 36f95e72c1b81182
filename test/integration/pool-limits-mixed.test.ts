// The deployment-wide limits under a mixed, seeded load (docs/decisions.md "Pools"): admissions,
// dispatches, completions, retries, busy hand-backs, lost workers (the clock moved past leases),
// broker passes and cancels across three pools, four at once per round, on one real redis-server.
// At every quiet point between rounds: no customer runs more than max_running across the pools, and
// the ledger counts exactly the queued jobs the pools hold; at the end the ledger is empty.
import { afterEach, beforeEach, expect, it } from "vitest";
import { createKeys } from "../../src/queues/keys.js";
import type { Attempt } from "../../src/queues/scheduler.js";
import { admitTo, DONE, limitedPools, type LimitedPools } from "../helpers/pool-limits.js";
import { testRedis, type TestRedis } from "../helpers/redis.js";

const MAX_RUNNING = 2;
const ROUNDS = 300;
const CUSTOMERS = ["alice", "bob", "carol"];
const RETRY = { error: { code: "backend_error", message: "boom", retriable: true } };

let r: TestRedis;
let now: number;
let lp: LimitedPools;

beforeEach(() => {
  r = testRedis();
  now = 1_000_000;
  lp = limitedPools({
    redis: r.client,
    prefix: r.prefix,
    names: ["gpu", "vid"],
    clock: () => now,
    graceMs: 10_000,
    leaseTtlMs: 5_000,
    slots: 3,
  });
});
afterEach(() => r.cleanup());

/** The customer's queued and running jobs in every pool (their tenant records). */
async function inPools(customer: string): Promise<{ queued: number; running: number }> {
  let queued = 0;
  let running = 0;
  for (const p of lp.pools) {
    const [q, n] = await r.client.hmget(createKeys(p.prefix).tenant(customer), "q", "r");
    queued += Number(q ?? 0);
    running += Number(n ?? 0);
  }
  return { queued, running };
}

it.each([1, 2])("seed %i: max_running holds and the ledger counts exactly", async (seed) => {
  let state = seed;
  const rnd = (n: number) => {
    state = (state * 1103515245 + 12345) % 2147483648;
    return state % n;
  };
  const running: Attempt[] = [];
  const step = async () => {
    const op = rnd(10);
    const p = lp.pools[rnd(lp.pools.length)]!;
    const customer = CUSTOMERS[rnd(CUSTOMERS.length)]!;
    if (op <= 2) {
      await admitTo(p, customer, { maxQueued: 4, maxRunning: MAX_RUNNING });
    } else if (op <= 4) {
      running.push(...(await p.sched.dispatch(2, p.backends)));
    } else if (op <= 6 && running.length > 0) {
      const a = running.splice(rnd(running.length), 1)[0]!;
      const pool = lp.pools.find((x) => x.name === lp.router.ofJob(a.id))!;
      const outcome = (["complete", "retry", "busy"] as const)[rnd(3)]!;
      const res = await pool.sched.finish(
        a.id,
        a.token,
        a.backend,
        outcome,
        outcome === "complete" ? DONE : RETRY,
      );
      running.push(...res.next);
    } else if (op === 7) {
      // workers stop answering: leases lapse and the reapers put their jobs back
      now += rnd(3000);
      for (const q of lp.pools) await q.sched.reap();
    } else if (op === 8) {
      for (const q of lp.pools) await q.limits.grantHeld();
    } else {
      const queued = await r.client.zrange(createKeys(p.prefix).queue, "0", "-1");
      if (queued.length > 0) await p.sched.cancel(queued[rnd(queued.length)]!, undefined);
    }
  };
  for (let round = 0; round < ROUNDS; round++) {
    await Promise.all([step(), step(), step(), step()]);
    for (const q of lp.pools) await q.limits.drain();
    for (const customer of CUSTOMERS) {
      const pools = await inPools(customer);
      expect(pools.running, `round ${round}, ${customer}`).toBeLessThanOrEqual(MAX_RUNNING);
      expect((await lp.ledger.counts(customer)).queued, `round ${round}, ${customer}`).toBe(pools.queued);
    }
  }
  // every lease lapses, then everything runs to the end
  now += 100_000;
  for (const q of lp.pools) await q.sched.reap();
  for (let pass = 0; pass < 100; pass++) {
    for (const q of lp.pools) {
      await q.limits.grantHeld();
      for (const a of await q.sched.dispatch(3, q.backends))
        await q.sched.finish(a.id, a.token, a.backend, "complete", DONE);
      await q.limits.drain();
    }
  }
  for (const customer of CUSTOMERS) expect(await inPools(customer)).toEqual({ queued: 0, running: 0 });
  expect(await r.client.zcard(lp.ledger.keys.limitLedger)).toBe(0);
});
