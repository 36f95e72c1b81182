// The worker role: Redis connections that ride out restarts, the backend registry, the worker service.
import { randomBytes } from "node:crypto";
import { hostname } from "node:os";
import type { RedisClient } from "../infra/redis-client.js";
import { servesModel, type BackendConfig } from "../config/backends.js";
import { formatFamilyModel } from "../core/model-route.js";
import { closeRedis } from "../infra/redis.js";
import { createBackendDirectory } from "../queues/backend-directory.js";
import { createWorkerSlots } from "../queues/worker-slots.js";
import { createSyncOutputs, withSyncOutputs } from "../queues/sync-outputs.js";
import { createSyncOutputWriter } from "../workers/sync-output-writer.js";
import { createRegistry } from "../workers/backends/registry.js";
import { createWorkerService, type WorkerService } from "../workers/worker-service.js";
import { createBreakers } from "../workers/backends/breakers.js";
import { createHealthPoller } from "../workers/backends/health.js";
import { startCasCollector } from "./cas-gc.js";
import { connectRole, type RoleContext } from "./role-context.js";
import { checkPoolBackends, schedulerFor, type Settings } from "./settings.js";
import { DEFAULT_POOL } from "../core/pools.js";
import { poolLimitParts, startLimitsSweeper } from "./pool-limits.js";

/**
 * The catalogue's default engine of each model that backends of several engines serve (where the
 * choice exists; it is sent with every dispatch, so it stays small).
 */
function preferredEngines(settings: Settings, backends: readonly BackendConfig[]): Record<string, string> {
  const out: Record<string, string> = {};
  for (const m of settings.catalog.entries()) {
    const fm = formatFamilyModel(m.family, m.model);
    const engines = new Set(backends.filter((b) => servesModel(b, fm)).map((b) => b.engine));
    if (m.default_backend && engines.size > 1) out[fm] = m.default_backend;
  }
  return out;
}

export async function startWorkerRole(
  ctx: RoleContext & { backends: readonly BackendConfig[] },
): Promise<WorkerService> {
  const { env } = ctx.settings;
  const workerId = `${hostname()}-${process.pid}-${randomBytes(3).toString("hex")}`;
  const logger = ctx.logger.child({ role: "worker" });
  const { redis, subscriber } = await connectRole(ctx, "worker");
  const bullConnections: RedisClient[] = [];
  ctx.runtime.defer("bullmq connections", async () => {
    await Promise.all(bullConnections.map((c) => closeRedis(c)));
  });

  // The pool this process runs (WORKER_POOL; docs/decisions.md "Pools"): its backends, its keys.
  const { pools } = ctx.settings;
  if (pools.pools.length > 0 && !ctx.settings.backendsFile)
    checkPoolBackends(pools, ctx.backends, ctx.settings.catalog);
  const pool = env.WORKER_POOL ?? DEFAULT_POOL;
  const prefix = pools.prefixOf(env.REDIS_PREFIX, pool);
  const mine = new Set(
    pools.backendsOf(
      pool,
      ctx.backends.map((b) => b.id),
    ),
  );
  const backends = ctx.backends.filter((b) => mine.has(b.id));
  if (backends.length === 0) throw new Error(`WORKER_POOL ${pool}: the pool has no backends to run`);
  if (pools.pools.length > 0) logger.info({ pool, backends: backends.map((b) => b.id) }, "worker pool");

  const registry = createRegistry(backends);
  ctx.runtime.defer("backend clients", () => registry.close());
  const own = schedulerFor(ctx.settings, redis, ctx.clock, 0, prefix);
  // with pools, under the deployment-wide limits (docs/decisions.md "Pools"): the broker of this
  // pool's held jobs listens on the ledger's channel, where every released permit is published
  const limits = poolLimitParts(ctx.settings, redis, ctx.clock, logger);
  const scheduler = limits ? limits.limit(pool, own) : own;
  if (limits) startLimitsSweeper(ctx.settings, limits, ctx.clock, ctx.runtime, logger);
  // Sync outputs held in Redis until written (docs/decisions.md "Sync route"): this worker writes
  // its own and sweeps its pool's; an input naming one reads the held copy meanwhile.
  const held = createSyncOutputs(redis, [prefix]);
  const blobs = withSyncOutputs(ctx.blobs, held);
  const syncOutputs = createSyncOutputWriter({
    blobs: ctx.blobs,
    held,
    clock: ctx.clock,
    logger,
    sweepMs: env.SYNC_OUTPUT_SWEEP_MS,
  });
  const totalCapacity = backends.reduce((s, b) => s + b.capacity, 0);
  const breakers = createBreakers(
    backends.map((b) => b.id),
    {
      windowMs: env.BREAKER_WINDOW_MS,
      volumeThreshold: env.BREAKER_VOLUME,
      errorPercent: env.BREAKER_ERROR_PERCENT,
      resetMs: env.BREAKER_RESET_MS,
    },
    logger,
  );
  const health = createHealthPoller(registry, logger, Math.min(2_000, Math.max(200, env.HEALTH_INTERVAL_MS)));
  const concurrency = env.WORKER_CONCURRENCY ?? Math.min(256, Math.max(1, totalCapacity));
  // Read when the process's snapshot is taken: its slots, what runs on each backend, its breakers.
  const metrics = ctx.metrics.worker({
    slots: concurrency,
    inFlight: () => {
      const counts = new Map<string, number>();
      for (const h of service.held.values()) counts.set(h.backend, (counts.get(h.backend) ?? 0) + 1);
      return counts;
    },
    breakers: () => breakers.states(),
  });
  breakers.onChange((id, state) => metrics.breakerChanged(id, state));
  const service: WorkerService = createWorkerService({
    workerId,
    prefix,
    subscriber,
    bullConnection: () => {
      const c = ctx.redisConnector.connect("worker", "rg-bullmq");
      bullConnections.push(c);
      return c;
    },
    scheduler,
    ...(limits
      ? {
          permits: {
            channel: limits.ledger.keys.limitChannel,
            grant: () => limits.pools.get(pool)!.grantHeld(),
          },
        }
      : {}),
    registry,
    directory: createBackendDirectory(redis, prefix, ctx.clock),
    workerSlots: createWorkerSlots(redis, prefix, ctx.clock),
    blobs,
    ...(ctx.handover ? { handover: ctx.handover } : {}),
    ...(ctx.settles ? { settles: ctx.settles } : {}),
    ...(ctx.heads ? { heads: ctx.heads } : {}),
    ...(env.SYNC_OUTPUT_IN_REDIS ? { syncOutputs } : {}),
    outputSweep: syncOutputs,
    clock: ctx.clock,
    logger,
    concurrency,
    lockMs: env.LOCK_MS,
    stalledIntervalMs: env.STALLED_INTERVAL_MS,
    backoff: { baseMs: env.BACKOFF_BASE_MS, maxMs: env.BACKOFF_MAX_MS },
    busyCooldownMs: env.BUSY_COOLDOWN_MS,
    publishIntervalMs: env.HEALTH_INTERVAL_MS,
    breakers,
    health,
    preferredEngine: preferredEngines(ctx.settings, backends),
    metrics,
  });
  // Registered before start, so a start that fails half-way still closes what it opened.
  ctx.runtime.defer("worker service", () => service.stop(env.SHUTDOWN_GRACE_MS));
  await service.start();
  startCasCollector(ctx, redis, logger);
  return service;
}
