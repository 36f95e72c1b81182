// Wires the CAS garbage collector into a role: every process that has the CAS (api, worker) runs
// one on its Redis connection; the collector's lock lets one pass run at a time across them.
import type { RedisClient } from "../infra/redis-client.js";
import type { Logger } from "pino";
import { createCasCollector } from "../queues/cas-collector.js";
import type { RoleContext } from "./role-context.js";

/** Starts the role's collector (first pass after CAS_GC_INTERVAL_MS) and registers its stop. */
export function startCasCollector(ctx: RoleContext, redis: RedisClient, logger: Logger): void {
  const { env } = ctx.settings;
  const collector = createCasCollector({
    redis,
    prefix: env.REDIS_PREFIX,
    sweeper: ctx.blobs,
    clock: ctx.clock,
    graceMs: env.CAS_GC_GRACE_S * 1000,
    keepAfterMs: env.CAS_RETENTION_S * 1000,
    batch: env.CAS_GC_BATCH,
    logger: logger.child({ component: "cas-gc" }),
    poolPrefixes: ctx.settings.pools.pools.map((p) => ctx.settings.pools.prefixOf(env.REDIS_PREFIX, p.name)),
  });
  collector.start(env.CAS_GC_INTERVAL_MS);
  ctx.runtime.defer("cas collector", () => collector.stop());
}
