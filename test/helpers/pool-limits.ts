// Pools under the deployment-wide limits at the scheduler's level (docs/decisions.md "Pools"): each
// pool's scheduler wrapped as the API and worker roles wrap it (main/pool-limits.ts), the ledger under
// the deployment's prefix, each pool's side and a sweeper, on any client (one redis-server or a
// Cluster) and a clock the test moves. Backends are plain views: nothing runs a model.
import { randomAlnum } from "../../src/core/ids.js";
import { createPoolRouter, DEFAULT_POOL, type PoolRouter } from "../../src/core/pools.js";
import type { RedisClient } from "../../src/infra/redis-client.js";
import { createLimitsLedger, type LimitsLedger } from "../../src/queues/limits-ledger.js";
import { createLimitedScheduler } from "../../src/queues/limited-scheduler.js";
import { createLimitsSweeper, type LimitsSweeper } from "../../src/queues/limits-sweeper.js";
import { createPoolLimits, type PoolLimits } from "../../src/queues/pool-limits.js";
import { createScheduler, type BackendView, type Scheduler } from "../../src/queues/scheduler.js";

export interface LimitedPool {
  readonly name: string;
  readonly prefix: string;
  /** The pool's scheduler as the roles call it (under the limits). */
  readonly sched: Scheduler;
  /** The pool's own scheduler, without the ledger steps (a process that died after its pool step). */
  readonly bare: Scheduler;
  readonly limits: PoolLimits;
  /** One backend of `slots` slots serving flux/schnell, this pool's own. */
  readonly backends: readonly BackendView[];
  /** A new job id of this pool. */
  newId(): string;
}

export interface LimitedPools {
  readonly router: PoolRouter;
  readonly ledger: LimitsLedger;
  readonly pools: readonly LimitedPool[];
  readonly sweeper: LimitsSweeper;
}

export function limitedPools(o: {
  redis: RedisClient;
  prefix: string;
  /** Named pools (the default pool comes first, always). */
  names: readonly string[];
  clock: () => number;
  graceMs: number;
  queueMax?: number;
  slots?: number;
  leaseTtlMs?: number;
}): LimitedPools {
  const router = createPoolRouter(o.names.map((name) => ({ name, models: [], backends: [] })));
  const ledger = createLimitsLedger(o.redis, o.prefix);
  const byName = new Map<string, PoolLimits>();
  const pools = router.names.map((name): LimitedPool => {
    const prefix = router.prefixOf(o.prefix, name);
    const bare = createScheduler({
      redis: o.redis,
      prefix,
      clock: o.clock,
      leaseTtlMs: o.leaseTtlMs ?? 5_000,
      maxAttempts: 3,
      retentionS: 3600,
      retentionCount: 1000,
    });
    const limits = createPoolLimits(o.redis, prefix, ledger, o.clock);
    byName.set(name, limits);
    return {
      name,
      prefix,
      bare,
      limits,
      sched: createLimitedScheduler(bare, {
        ledger,
        pool: limits,
        clock: o.clock,
        queueMax: o.queueMax ?? -1,
      }),
      backends: [
        { id: `b-${name}`, cap: o.slots ?? 4, engine: "nunchaku", models: ["flux/schnell"], ok: true },
      ],
      newId: () => router.jobId(`j_${randomAlnum(22)}`, name),
    };
  });
  const sweeper = createLimitsSweeper({
    ledger,
    pools: byName,
    router,
    clock: o.clock,
    graceMs: o.graceMs,
    voidTtlS: 3600,
    owner: "test-sweeper",
    lockMs: 60_000,
  });
  return { router, ledger, pools, sweeper };
}

/** Admits a job of `customer` into `pool` with the tier limits given; the admission's result. */
export function admitTo(
  pool: LimitedPool,
  customer: string,
  limits: { maxQueued?: number; maxRunning?: number } = {},
  id = pool.newId(),
) {
  return pool.sched.admit({
    id,
    route: "flux/schnell",
    priority: "normal",
    fields: {
      cust: customer,
      prio: "normal",
      mod: "image",
      fam: "flux",
      mdl: "schnell",
      task: "t2i",
      fmt: "1024",
      seed: "7",
      mode: "async",
    },
    request: JSON.stringify({ prompt: "a cat" }),
    serviceMs: 1000,
    capacity: 4,
    tenant: { weight: 1, ...limits },
  });
}

export const DONE = { output: "sha256-x", outputs: ["sha256-x"], ctype: "image/png", seed: 7, gpu_ms: 5 };

export { DEFAULT_POOL };
