// Where this process's Redis is, from the environment: REDIS_URL, REDIS_SENTINELS,
// REDIS_CLUSTER_NODES, or none of them (then `start` runs the embedded server).
import type { Env } from "../config/env.js";
import type { RedisTarget } from "../infra/redis.js";
import { readCaFile } from "./ca-file.js";

/**
 * The target the environment names (REDIS_URL, REDIS_SENTINELS with its name, or
 * REDIS_CLUSTER_NODES, each of the last two with credentials and TLS settings), undefined when it
 * names none. The CA file is read here, before anything connects.
 * @throws Error when REDIS_TLS_CA_FILE cannot be read.
 */
export function configuredRedisTarget(env: Env): RedisTarget | undefined {
  const ca = readCaFile(env.REDIS_TLS_CA_FILE, "REDIS_TLS_CA_FILE");
  const withCa = ca === undefined ? {} : { ca };
  if (env.REDIS_SENTINELS !== undefined && env.REDIS_SENTINEL_NAME !== undefined) {
    return {
      kind: "sentinel",
      sentinels: env.REDIS_SENTINELS,
      name: env.REDIS_SENTINEL_NAME,
      ...(env.REDIS_USERNAME === undefined ? {} : { username: env.REDIS_USERNAME }),
      ...(env.REDIS_PASSWORD === undefined ? {} : { password: env.REDIS_PASSWORD }),
      ...(env.REDIS_SENTINEL_PASSWORD === undefined ? {} : { sentinelPassword: env.REDIS_SENTINEL_PASSWORD }),
      tls: env.REDIS_TLS,
      sentinelTls: env.REDIS_SENTINEL_TLS,
      ...withCa,
    };
  }
  if (env.REDIS_CLUSTER_NODES !== undefined) {
    return {
      kind: "cluster",
      nodes: env.REDIS_CLUSTER_NODES,
      ...(env.REDIS_USERNAME === undefined ? {} : { username: env.REDIS_USERNAME }),
      ...(env.REDIS_PASSWORD === undefined ? {} : { password: env.REDIS_PASSWORD }),
      tls: env.REDIS_TLS,
      ...withCa,
    };
  }
  if (env.REDIS_URL !== undefined) return { kind: "url", url: env.REDIS_URL, ...withCa };
  return undefined;
}
