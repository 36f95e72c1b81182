// The rules that tie the Redis target settings together (env.ts checks them after each variable).
import type { z } from "zod";

/**
 * REDIS_URL or REDIS_SENTINELS (with its name), never both; the Sentinel-only settings only with
 * Sentinel (with REDIS_URL the credentials and TLS are in the URL: one spelling each); the CA file only
 * with TLS somewhere; WAIT only with a Redis that can have replicas (not the embedded one).
 */
export function redisTargetIssues(
  env: {
    readonly REDIS_URL?: string | undefined;
    readonly REDIS_SENTINELS?: unknown;
    readonly REDIS_SENTINEL_NAME?: string | undefined;
    readonly REDIS_SENTINEL_PASSWORD?: string | undefined;
    readonly REDIS_SENTINEL_TLS: boolean;
    readonly REDIS_USERNAME?: string | undefined;
    readonly REDIS_PASSWORD?: string | undefined;
    readonly REDIS_TLS: boolean;
    readonly REDIS_TLS_CA_FILE?: string | undefined;
    readonly REDIS_WAIT_REPLICAS: number;
  },
  ctx: z.RefinementCtx,
): void {
  const issue = (path: string, message: string) => ctx.addIssue({ code: "custom", path: [path], message });
  const sentinel = env.REDIS_SENTINELS !== undefined;
  if (sentinel && env.REDIS_URL !== undefined)
    issue("REDIS_SENTINELS", "set REDIS_URL or REDIS_SENTINELS, not both");
  if (sentinel && env.REDIS_SENTINEL_NAME === undefined)
    issue(
      "REDIS_SENTINEL_NAME",
      "REDIS_SENTINELS needs REDIS_SENTINEL_NAME (the name the sentinels monitor)",
    );
  if (!sentinel) {
    const only = {
      REDIS_SENTINEL_NAME: env.REDIS_SENTINEL_NAME !== undefined,
      REDIS_SENTINEL_PASSWORD: env.REDIS_SENTINEL_PASSWORD !== undefined,
      REDIS_SENTINEL_TLS: env.REDIS_SENTINEL_TLS,
      REDIS_USERNAME: env.REDIS_USERNAME !== undefined,
      REDIS_PASSWORD: env.REDIS_PASSWORD !== undefined,
      REDIS_TLS: env.REDIS_TLS,
    };
    for (const [name, set] of Object.entries(only)) {
      if (set) {
        issue(
          name,
          `${name} applies with REDIS_SENTINELS only; with REDIS_URL put credentials and TLS in the URL (rediss://user:password@host:port)`,
        );
      }
    }
  }
  const tls = sentinel
    ? env.REDIS_TLS || env.REDIS_SENTINEL_TLS
    : (env.REDIS_URL?.startsWith("rediss:") ?? false);
  if (env.REDIS_TLS_CA_FILE !== undefined && !tls)
    issue(
      "REDIS_TLS_CA_FILE",
      "REDIS_TLS_CA_FILE needs TLS: a rediss:// REDIS_URL, REDIS_TLS or REDIS_SENTINEL_TLS",
    );
  if (env.REDIS_WAIT_REPLICAS > 0 && !sentinel && env.REDIS_URL === undefined)
    issue(
      "REDIS_WAIT_REPLICAS",
      "REDIS_WAIT_REPLICAS needs a Redis with replicas (REDIS_SENTINELS or REDIS_URL); the embedded one has none",
    );
}
