// The API role's scheduler-side objects, one set per pool (docs/decisions.md "Pools"): with no
// POOLS_FILE exactly the single pool's objects, as before; with pools, each pool's own set under its
// hash tag and the facades that send each call to its job's pool and add the pools up.
import type { RedisClient } from "../infra/redis-client.js";
import type { Clock } from "../core/time.js";
import type { CostModel } from "../core/cost.js";
import { createJobStore, type JobStore } from "../queues/job-store.js";
import { createIdempotencyStore, type IdempotencyStore } from "../queues/idempotency-store.js";
import { createBackendDirectory } from "../queues/backend-directory.js";
import { createWorkerSlots } from "../queues/worker-slots.js";
import { createOutboxStore } from "../queues/outbox-store.js";
import type { Scheduler } from "../queues/scheduler.js";
import { createPooledIdempotency, createPooledJobStore, createPooledScheduler } from "../queues/pool-set.js";
import { CAPACITY_CACHE_MS, createCapacityView, type CapacityView } from "../api/capacity.js";
import { createPooledCapacity } from "../api/pooled-capacity.js";
import type { PoolView } from "../api/deps.js";
import type { PoolLimitParts } from "./pool-limits.js";
import { schedulerFor, type Settings } from "./settings.js";

export interface ApiPoolParts {
  readonly scheduler: Scheduler;
  readonly store: JobStore;
  readonly idempotency: IdempotencyStore;
  readonly capacity: CapacityView;
  /** Every pool's job event channel (the event hub subscribes to all). */
  readonly eventChannels: readonly string[];
  /** Each pool's own reads; undefined for a single pool. */
  readonly views?: readonly PoolView[];
}

export function apiPoolParts(
  settings: Settings,
  redis: RedisClient,
  clock: Clock,
  cost: CostModel,
  limits?: PoolLimitParts,
): ApiPoolParts {
  const { env } = settings;
  const router = settings.pools;
  const parts = router.names.map((name) => {
    const prefix = router.prefixOf(env.REDIS_PREFIX, name);
    // Script calls in capped pipelines: docs/decisions.md "Script pipelines" (measured: bench/enqueue.ts).
    const own = schedulerFor(settings, redis, clock, env.REDIS_PIPELINE_MAX, prefix);
    // with pools, under the deployment-wide limits (docs/decisions.md "Pools")
    const scheduler = limits ? limits.limit(name, own) : own;
    const store = createJobStore(redis, prefix, { pipelineMax: env.REDIS_PIPELINE_MAX });
    const idempotency = createIdempotencyStore({ redis, prefix, clock, pipelineMax: env.REDIS_PIPELINE_MAX });
    const capacity = createCapacityView({
      directory: createBackendDirectory(redis, prefix, clock),
      store,
      workerSlots: createWorkerSlots(redis, prefix, clock),
      cost,
      clock,
      cacheMs: CAPACITY_CACHE_MS,
      staleMs: Math.max(10_000, env.HEALTH_INTERVAL_MS * 5),
    });
    return {
      name,
      prefix,
      scheduler,
      store,
      idempotency,
      capacity,
      outbox: createOutboxStore(redis, prefix),
    };
  });
  const eventChannels = parts.map((p) => p.scheduler.keys.eventChannel);
  if (parts.length === 1) return { ...parts[0]!, eventChannels };
  const by = <T>(pick: (p: (typeof parts)[number]) => T) => new Map(parts.map((p) => [p.name, pick(p)]));
  return {
    scheduler: createPooledScheduler(
      router,
      by((p) => p.scheduler),
    ),
    store: createPooledJobStore(
      router,
      by((p) => p.store),
    ),
    idempotency: createPooledIdempotency(
      router,
      by((p) => p.idempotency),
    ),
    capacity: createPooledCapacity(
      router,
      by((p) => p.capacity),
    ),
    eventChannels,
    views: parts.map(({ name, prefix, store, capacity, outbox }) => ({
      name,
      prefix,
      store,
      capacity,
      outbox,
    })),
  };
}
