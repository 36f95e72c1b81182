// The rules that tie the Redis target settings together (env.ts checks them after each variable).
import type { z } from "zod";

/**
 * True when `prefix` gives every key a Redis Cluster hash tag: a `{` followed later by a `}` with at
 * least one character between them (Redis hashes only that part of a key whose name starts with the
 * prefix, so all of a prefix's keys are in one slot).
 */
export function hasHashTag(prefix: string): boolean {
  const open = prefix.indexOf("{");
  return open >= 0 && prefix.indexOf("}", open + 1) > open + 1;
}

/**
 * One of REDIS_URL, REDIS_SENTINELS (with its name) and REDIS_CLUSTER_NODES, never two; the
 * Sentinel-only settings only with Sentinel, the data nodes' credentials and TLS only with Sentinel or
 * a Cluster (with REDIS_URL they are in the URL: one spelling each); with a Cluster, a prefix with a
 * hash tag; the CA file only with TLS somewhere; WAIT only with a Redis that can have replicas (not
 * the embedded one).
 */
export function redisTargetIssues(
  env: {
    readonly REDIS_URL?: string | undefined;
    readonly REDIS_SENTINELS?: unknown;
    readonly REDIS_CLUSTER_NODES?: unknown;
    readonly REDIS_SENTINEL_NAME?: string | undefined;
    readonly REDIS_SENTINEL_PASSWORD?: string | undefined;
    readonly REDIS_SENTINEL_TLS: boolean;
    readonly REDIS_USERNAME?: string | undefined;
    readonly REDIS_PASSWORD?: string | undefined;
    readonly REDIS_TLS: boolean;
    readonly REDIS_TLS_CA_FILE?: string | undefined;
    readonly REDIS_WAIT_REPLICAS: number;
    readonly REDIS_PREFIX: string;
  },
  ctx: z.RefinementCtx,
): void {
  const issue = (path: string, message: string) => ctx.addIssue({ code: "custom", path: [path], message });
  const sentinel = env.REDIS_SENTINELS !== undefined;
  const cluster = env.REDIS_CLUSTER_NODES !== undefined;
  const targets = [
    env.REDIS_URL === undefined ? undefined : "REDIS_URL",
    sentinel ? "REDIS_SENTINELS" : undefined,
    cluster ? "REDIS_CLUSTER_NODES" : undefined,
  ].filter((t) => t !== undefined);
  if (targets.length > 1)
    issue(
      targets[1]!,
      `set one of REDIS_URL, REDIS_SENTINELS and REDIS_CLUSTER_NODES, not ${targets.join(" and ")}`,
    );
  if (sentinel && env.REDIS_SENTINEL_NAME === undefined)
    issue(
      "REDIS_SENTINEL_NAME",
      "REDIS_SENTINELS needs REDIS_SENTINEL_NAME (the name the sentinels monitor)",
    );
  const refuse = (only: Record<string, boolean>, where: string) => {
    for (const [name, set] of Object.entries(only)) {
      if (set) {
        issue(
          name,
          `${name} applies with ${where} only; with REDIS_URL put credentials and TLS in the URL (rediss://user:password@host:port)`,
        );
      }
    }
  };
  if (!sentinel) {
    refuse(
      {
        REDIS_SENTINEL_NAME: env.REDIS_SENTINEL_NAME !== undefined,
        REDIS_SENTINEL_PASSWORD: env.REDIS_SENTINEL_PASSWORD !== undefined,
        REDIS_SENTINEL_TLS: env.REDIS_SENTINEL_TLS,
      },
      "REDIS_SENTINELS",
    );
  }
  if (!sentinel && !cluster) {
    refuse(
      {
        REDIS_USERNAME: env.REDIS_USERNAME !== undefined,
        REDIS_PASSWORD: env.REDIS_PASSWORD !== undefined,
        REDIS_TLS: env.REDIS_TLS,
      },
      "REDIS_SENTINELS or REDIS_CLUSTER_NODES",
    );
  }
  if (cluster && !hasHashTag(env.REDIS_PREFIX))
    issue(
      "REDIS_PREFIX",
      `REDIS_CLUSTER_NODES needs a REDIS_PREFIX with a hash tag such as "{rg}" (got "${env.REDIS_PREFIX}"): every key of a prefix must be in one slot`,
    );
  const tls =
    sentinel || cluster
      ? env.REDIS_TLS || env.REDIS_SENTINEL_TLS
      : (env.REDIS_URL?.startsWith("rediss:") ?? false);
  if (env.REDIS_TLS_CA_FILE !== undefined && !tls)
    issue(
      "REDIS_TLS_CA_FILE",
      "REDIS_TLS_CA_FILE needs TLS: a rediss:// REDIS_URL, REDIS_TLS or REDIS_SENTINEL_TLS",
    );
  if (env.REDIS_WAIT_REPLICAS > 0 && targets.length === 0)
    issue(
      "REDIS_WAIT_REPLICAS",
      "REDIS_WAIT_REPLICAS needs a Redis with replicas (REDIS_SENTINELS, REDIS_CLUSTER_NODES or REDIS_URL); the embedded one has none",
    );
}
