// The one place a process opens Redis connections from (src/main hands it to every role): the
// target, the profiles' settings, the outage log, and through Sentinel the failover watch over every
// connection it opened.
import type { Redis } from "ioredis";
import type { Logger } from "pino";
import { watchFailovers, type FailoverWatch } from "./failover-watch.js";
import { isCluster } from "./redis-client.js";
import {
  createOutageLog,
  createRedis,
  reconnectDelay,
  type ConnectionSettings,
  type RedisClient,
  type RedisProfile,
  type RedisTarget,
} from "./redis.js";

export interface RedisConnector {
  readonly target: RedisTarget;
  /**
   * A new connection in `profile` (a `Cluster` for a cluster target); `overrides` replace the
   * process's settings for this one.
   */
  connect(profile: RedisProfile, name: string, overrides?: ConnectionSettings): RedisClient;
  /** Stops the failover watch (each connection is closed by whoever opened it). Idempotent. */
  close(): Promise<void>;
}

/**
 * `settings.logger`: the process's logger, for one line per outage (infra/redis.ts OutageLog) and
 * per failover the sentinels announce.
 */
export function createRedisConnector(
  target: RedisTarget,
  settings: ConnectionSettings & { readonly logger?: Logger },
): RedisConnector {
  const { logger, ...connection } = settings;
  const outages = logger === undefined ? undefined : createOutageLog(logger);
  const open = new Set<Redis>();
  let watch: FailoverWatch | undefined;
  // Only Sentinel's connections are tracked, and those are single-server ones.
  const track = (client: RedisClient) => {
    if (isCluster(client)) return;
    open.add(client);
    client.once("end", () => open.delete(client));
  };
  const startWatch = (): FailoverWatch | undefined => {
    if (target.kind !== "sentinel") return undefined;
    const maxMs = connection.reconnectMaxMs ?? 1_000;
    return watchFailovers({
      sentinels: target.sentinels,
      name: target.name,
      ...(target.sentinelPassword === undefined ? {} : { sentinelPassword: target.sentinelPassword }),
      ...(target.sentinelTls ? { sentinelTls: target.ca === undefined ? {} : { ca: target.ca } } : {}),
      clients: () => open,
      retryStrategy: (times) => reconnectDelay(times, maxMs),
      ...(logger === undefined ? {} : { logger }),
    });
  };
  return {
    target,
    connect(profile, name, overrides = {}) {
      if (target.kind === "sentinel") watch ??= startWatch();
      return createRedis(target, profile, name, {
        ...connection,
        ...overrides,
        ...(outages ? { outages } : {}),
        ...(target.kind === "sentinel" ? { track } : {}),
      });
    },
    async close() {
      const w = watch;
      watch = undefined;
      await w?.close();
    },
  };
}
