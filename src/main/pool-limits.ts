// The deployment-wide limits' parts of a process with pools (docs/decisions.md "Pools"): the ledger
// under REDIS_PREFIX, each pool's side, its scheduler wrapped so that the limits hold across the
// pools, and the sweeper, run every POOL_LIMITS_SWEEP_MS (one process at a time). Nothing of it exists
// without POOLS_FILE: a single-pool deployment's schedulers are called directly.
import { randomBytes } from "node:crypto";
import type { Logger } from "pino";
import type { RedisClient } from "../infra/redis-client.js";
import type { Clock } from "../core/time.js";
import { createLimitsLedger, type LimitsLedger } from "../queues/limits-ledger.js";
import { createLimitedScheduler } from "../queues/limited-scheduler.js";
import { createLimitsSweeper } from "../queues/limits-sweeper.js";
import { createPoolLimits, type PoolLimits } from "../queues/pool-limits.js";
import type { Scheduler } from "../queues/scheduler.js";
import { every } from "../workers/timers.js";
import type { Runtime } from "./runtime.js";
import type { Settings } from "./settings.js";

export interface PoolLimitParts {
  readonly ledger: LimitsLedger;
  /** Each pool's side, by pool name. */
  readonly pools: ReadonlyMap<string, PoolLimits>;
  /** `scheduler` (of pool `name`) under the deployment-wide limits. */
  limit(name: string, scheduler: Scheduler): Scheduler;
}

/** The parts, or undefined for a single-pool deployment. */
export function poolLimitParts(
  settings: Settings,
  redis: RedisClient,
  clock: Clock,
  logger: Logger,
): PoolLimitParts | undefined {
  const { env } = settings;
  const router = settings.pools;
  if (router.pools.length === 0) return undefined;
  const ledger = createLimitsLedger(redis, env.REDIS_PREFIX);
  const pools = new Map(
    router.names.map((name) => [
      name,
      createPoolLimits(redis, router.prefixOf(env.REDIS_PREFIX, name), ledger, clock),
    ]),
  );
  const onError = (err: unknown) =>
    logger.warn(
      { err: err instanceof Error ? err.message : String(err) },
      "pool limits: release deferred to the sweeper",
    );
  return {
    ledger,
    pools,
    limit(name, scheduler) {
      const pool = pools.get(name);
      if (pool === undefined) throw new Error(`no pool ${name}`);
      return createLimitedScheduler(scheduler, { ledger, pool, clock, queueMax: env.QUEUE_MAX, onError });
    },
  };
}

/** Runs the sweeper every POOL_LIMITS_SWEEP_MS until shutdown. */
export function startLimitsSweeper(
  settings: Settings,
  parts: PoolLimitParts,
  clock: Clock,
  runtime: Runtime,
  logger: Logger,
): void {
  const { env } = settings;
  const sweeper = createLimitsSweeper({
    ledger: parts.ledger,
    pools: parts.pools,
    router: settings.pools,
    clock,
    graceMs: env.POOL_LIMITS_GRACE_MS,
    voidTtlS: 86_400,
    owner: randomBytes(6).toString("hex"),
    lockMs: env.POOL_LIMITS_SWEEP_MS,
  });
  const timer = every(
    env.POOL_LIMITS_SWEEP_MS,
    async () => {
      const released = await sweeper.sweep();
      if (released > 0) logger.warn({ released }, "pool limits: released leftover ledger entries");
    },
    logger,
    "pool limits sweep",
  );
  runtime.defer("pool limits sweeper", () => timer.stop());
}
