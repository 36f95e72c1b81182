// The sweeper of the deployment-wide limits (docs/decisions.md "Pools"): repairs what a crash between
// a ledger step and its pool step left — always on the strict side: a place or permit the ledger
// holds for a job that does not hold it. Each pass (one process at a time) first releases what the
// pools reported ended, then looks at every entry older than the grace that it has not seen held yet,
// in the pool its job id names: held → never looked at again (its end will be reported); its
// attempt still running → again after the grace; over → fenced in the pool and released. So a
// leftover lives at most the grace plus one interval.
import type { PoolRouter } from "../core/pools.js";
import type { Clock } from "../core/time.js";
import { jobOfMember, LIMIT_ENTRY_HELD, parseLimitEntry, type LimitsLedger } from "./limits-ledger.js";
import type { PoolLimits } from "./pool-limits.js";

export interface LimitsSweeperOptions {
  readonly ledger: LimitsLedger;
  /** Every pool's side, by the pool's name (PoolRouter.names). */
  readonly pools: ReadonlyMap<string, PoolLimits>;
  readonly router: PoolRouter;
  readonly clock: Clock;
  /** An entry younger than this is left alone (its pool step may be on its way): POOL_LIMITS_GRACE_MS. */
  readonly graceMs: number;
  /** Lifetime of the void marker written for an admission that never arrived (s). */
  readonly voidTtlS: number;
  /** This process, as the lock's owner. */
  readonly owner: string;
  /** How long one pass holds the lock (ms): the interval between passes. */
  readonly lockMs: number;
}

/** Entries looked at per round trip, and round trips per pass at most (a pass goes on while batches are full). */
const SWEEP_BATCH = 1_000;
const SWEEP_BATCHES = 50;

export interface LimitsSweeper {
  /** One pass, unless another process holds the lock (then 0): the number of entries it released. */
  sweep(): Promise<number>;
}

export function createLimitsSweeper(o: LimitsSweeperOptions): LimitsSweeper {
  return {
    async sweep() {
      if (!(await o.ledger.lockSweep(o.owner, o.lockMs))) return 0;
      await Promise.all([...o.pools.values()].map((p) => p.drain()));
      let released = 0;
      for (let i = 0; i < SWEEP_BATCHES; i++) {
        const { seen, freed } = await batch();
        released += freed;
        if (seen < SWEEP_BATCH) break;
      }
      return released;
    },
  };

  /** Looks at the oldest due entries: how many it saw and how many it released. */
  async function batch(): Promise<{ seen: number; freed: number }> {
    const now = o.clock();
    const due = await o.ledger.due(now - o.graceMs, SWEEP_BATCH);
    const byPool = new Map<string, string[]>();
    const release: string[] = [];
    for (const { entry } of due) {
      const parsed = parseLimitEntry(entry);
      if (parsed === undefined) {
        release.push(entry);
        continue;
      }
      const pool = o.router.ofJob(jobOfMember(parsed.member));
      const list = byPool.get(pool);
      if (list) list.push(entry);
      else byPool.set(pool, [entry]);
    }
    const rescore: { entry: string; score: number }[] = [];
    for (const [name, entries] of byPool) {
      const pool = o.pools.get(name);
      if (pool === undefined) {
        release.push(...entries);
        continue;
      }
      const verdicts = await pool.probe(entries, o.voidTtlS);
      entries.forEach((entry, i) => {
        const v = verdicts[i] ?? "over";
        if (v === "over") release.push(entry);
        else rescore.push({ entry, score: v === "held" ? LIMIT_ENTRY_HELD : now });
      });
    }
    await o.ledger.rescore(rescore);
    return { seen: due.length, freed: release.length > 0 ? await o.ledger.release(release) : 0 };
  }
}
