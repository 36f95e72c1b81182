// What `start` hands every role it runs, and the Redis connections each role opens from it.
import type { RedisClient } from "../infra/redis-client.js";
import type { Logger } from "pino";
import type { BlobStore, BlobSweeper } from "../core/ports.js";
import type { OutputHandover } from "../core/output-handover.js";
import type { SettleSignal } from "../core/settle-signal.js";
import type { HeadSignal } from "../core/head-signal.js";
import type { Clock } from "../core/time.js";
import type { ProcessMetrics } from "../infra/metrics.js";
import { closeRedis, waitReady } from "../infra/redis.js";
import type { RedisConnector } from "../infra/redis-connector.js";
import type { Runtime } from "./runtime.js";
import type { Settings } from "./settings.js";

export interface RoleContext {
  readonly settings: Settings;
  /**
   * Every Redis connection of the process is opened through this (src/infra/redis.ts): it knows
   * the target (a URL or Sentinel), the profiles' timeouts and the process's outage log.
   */
  readonly redisConnector: RedisConnector;
  readonly runtime: Runtime;
  readonly logger: Logger;
  readonly clock: Clock;
  /** The CAS: its objects, and the sweep side its garbage collector uses. */
  readonly blobs: BlobStore & BlobSweeper;
  /** Sync outputs handed from this process's worker role to its api role (core/output-handover.ts). */
  readonly handover?: OutputHandover;
  /** Terminal settles of this process's worker role, heard by its api role (core/settle-signal.ts). */
  readonly settles?: SettleSignal;
  /** Admissions at the head of the queue by this process's api role, heard by its worker role. */
  readonly heads?: HeadSignal;
  /** The process's metrics (one per process, whatever roles it runs; main/metrics.ts). */
  readonly metrics: ProcessMetrics;
}

/**
 * The role's command connection (in the role's profile, ready) and its pub/sub connection, both
 * closed at shutdown.
 * @throws Error when Redis is not reachable within 10 s.
 */
export async function connectRole(
  ctx: RoleContext,
  role: "api" | "worker",
): Promise<{ redis: RedisClient; subscriber: RedisClient }> {
  const redis = ctx.redisConnector.connect(role, `rg-${role}`);
  ctx.runtime.defer(`${role} redis`, () => closeRedis(redis));
  await waitReady(redis, 10_000);
  const subscriber = ctx.redisConnector.connect("subscriber", `rg-${role}-sub`);
  ctx.runtime.defer(`${role} subscriber`, () => closeRedis(subscriber));
  return { redis, subscriber };
}
