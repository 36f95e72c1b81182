// One pool's side of the deployment-wide limits (docs/decisions.md "Pools"): releasing in the ledger
// what the pool's steps ended (drain of lim:gone), handing permits of the running limit to the pool's
// held jobs (the broker), reserving places for the jobs the reaper will put back, and the sweeper's
// look at ledger entries of the pool's jobs. Built only when POOLS_FILE names pools.
import type { RedisClient } from "../infra/redis-client.js";
import type { Clock } from "../core/time.js";
import { createKeys, type Keys } from "./keys.js";
import { limitEntry, type LimitsLedger } from "./limits-ledger.js";
import { defineScripts } from "./scripts.js";

/** Entries taken from lim:gone per round trip. */
const DRAIN_BATCH = 200;
/** Tenants and held jobs per tenant one broker pass looks at. */
const BROKER_TENANTS = 50;
const BROKER_JOBS = 100;

/** What the sweeper learns of an entry: over (release it), not begun yet, or held by its job. */
export type ProbeVerdict = "over" | "pending" | "held";
const VERDICTS: readonly ProbeVerdict[] = ["over", "pending", "held"];

export interface PoolLimits {
  readonly keys: Keys;
  /**
   * Releases in the ledger every end the pool reported (lim:gone), then drops them from the list: at
   * least once (a release applied twice changes nothing). Calls made while one runs share the next.
   */
  drain(): Promise<void>;
  /**
   * The broker: claims permits for the pool's held jobs of tenants with a deployment-wide running
   * limit and applies them (the jobs go back to their routes, the dispatchers are woken); a permit
   * not applied is released. Calls made while one runs share the next.
   */
  grantHeld(): Promise<void>;
  /** Reserves, in the ledger, the places of the jobs whose leases expired by `now` (before reap(now)). */
  reserveLapsed(now: number): Promise<void>;
  /** The customer of job `id` (undefined when there is no such job). */
  customerOf(id: string): Promise<string | undefined>;
  /** The sweeper's verdicts on ledger entries of this pool's jobs (fencing what is over). */
  probe(entries: readonly string[], voidTtlS: number): Promise<ProbeVerdict[]>;
}

/** A pass that runs one at a time: a call while one runs gets the next, shared by every such call. */
function singleFlight(pass: () => Promise<void>): () => Promise<void> {
  let running: Promise<void> | undefined;
  let next: Promise<void> | undefined;
  const start = (): Promise<void> => {
    const p = pass().finally(() => {
      if (running === p) running = undefined;
    });
    running = p;
    return p;
  };
  return () => {
    if (next) return next;
    if (!running) return start();
    const n = running
      .catch(() => undefined)
      .then(() => {
        next = undefined;
        return start();
      });
    next = n;
    return n;
  };
}

export function createPoolLimits(
  redis: RedisClient,
  prefix: string,
  ledger: LimitsLedger,
  clock: Clock,
): PoolLimits {
  const keys = createKeys(prefix);
  const run = defineScripts(redis, prefix);
  const route = keys.queue;

  const drain = singleFlight(async () => {
    for (;;) {
      const gone = await redis.lrange(keys.limitGone, 0, DRAIN_BATCH - 1);
      if (gone.length === 0) return;
      await ledger.release(gone);
      const drop = redis.multi();
      for (const e of gone) drop.lrem(keys.limitGone, 1, e);
      await drop.exec();
      if (gone.length < DRAIN_BATCH) return;
    }
  });

  const grantHeld = singleFlight(async () => {
    const raw = (await run("lim_held", route, [BROKER_TENANTS, BROKER_JOBS])) as string;
    const tenants = JSON.parse(raw) as { c: string; l: number; ids: string[] }[];
    for (const t of tenants) {
      const permits = await ledger.claim(t.c, t.l, t.ids, clock());
      if (permits.length === 0) continue;
      const unused = (await run("lim_grant", route, permits)) as string[];
      if (unused.length > 0) await ledger.release(unused.map((m) => limitEntry("r", t.c, m)));
    }
  });

  return {
    keys,
    drain,
    grantHeld,
    async reserveLapsed(now) {
      const entries = (await run("lim_lapsed", route, [now])) as string[];
      if (entries.length > 0) await ledger.add(entries, now);
    },
    async customerOf(id) {
      return (await redis.hget(keys.job(id), "cust")) ?? undefined;
    },
    async probe(entries, voidTtlS) {
      if (entries.length === 0) return [];
      const codes = (await run("lim_probe", route, [voidTtlS, ...entries])) as number[];
      return codes.map((c) => VERDICTS[Number(c)] ?? "over");
    },
  };
}
