// Redis connections: one profile per use, so the API fails fast while workers ride out restarts.
import { Redis, type RedisOptions } from "ioredis";

export type RedisProfile = "api" | "worker" | "subscriber";

/**
 * Options per profile:
 * - `api`: no offline queue, one retry, a command timeout (default 2 s, REDIS_COMMAND_TIMEOUT_MS): a
 *   request never hangs on a dead Redis, it fails at once and the route answers 503.
 * - `worker`: commands queue while disconnected and run after the reconnect (workers must finish
 *   what they started once Redis is back).
 * - `subscriber`: pub/sub; reconnects and resubscribes forever.
 */
function redisOptions(profile: RedisProfile, commandTimeoutMs: number): RedisOptions {
  const retryStrategy = (times: number) => Math.min(50 * 2 ** Math.min(times, 5), 1_000);
  const base: RedisOptions = { lazyConnect: false, retryStrategy, connectTimeout: 2_000 };
  switch (profile) {
    case "api":
      // Commands issued in the same tick share one socket write (requests arrive in bursts).
      return {
        ...base,
        enableOfflineQueue: false,
        maxRetriesPerRequest: 1,
        commandTimeout: commandTimeoutMs,
        enableAutoPipelining: true,
      };
    case "worker":
    case "subscriber":
      return { ...base, enableOfflineQueue: true, maxRetriesPerRequest: null };
  }
}

/** `commandTimeoutMs`: the `api` profile's command timeout (default 2000). */
export function createRedis(
  url: string,
  profile: RedisProfile,
  name: string,
  opts: { readonly commandTimeoutMs?: number } = {},
): Redis {
  // ioredis 6's option types disagree with exactOptionalPropertyTypes; the values are plain options.
  const options = { ...redisOptions(profile, opts.commandTimeoutMs ?? 2_000), connectionName: name };
  const client = new Redis(url, options as never);
  // Errors surface through the commands that fail; the event itself must not crash the process.
  client.on("error", () => undefined);
  return client;
}

/** Resolves once the client is ready, or rejects after `timeoutMs`. */
export async function waitReady(client: Redis, timeoutMs: number): Promise<void> {
  if (client.status === "ready") return;
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => {
      cleanup();
      reject(new Error(`Redis not reachable within ${timeoutMs} ms`));
    }, timeoutMs);
    const onReady = () => {
      cleanup();
      resolve();
    };
    const cleanup = () => {
      clearTimeout(timer);
      client.off("ready", onReady);
    };
    client.on("ready", onReady);
  });
}

/**
 * Refuses a Redis that may evict keys: a queue whose jobs can silently disappear is not a queue.
 * @throws Error naming the policy found.
 */
export async function assertNoEviction(client: Redis): Promise<void> {
  let policy: string | undefined;
  try {
    const reply = await client.config("GET", "maxmemory-policy");
    policy = reply[1];
  } catch {
    // CONFIG may be disabled on managed Redis; INFO still reports the policy.
    const info = await client.info("memory");
    policy = /maxmemory_policy:(\S+)/.exec(info)?.[1];
  }
  if (policy !== "noeviction") {
    throw new Error(
      `Redis maxmemory-policy is "${policy ?? "unknown"}": render-gateway needs "noeviction" so that jobs are never evicted`,
    );
  }
}

/** Quits gracefully, or disconnects at once when the server is gone. Idempotent. */
export async function closeRedis(client: Redis): Promise<void> {
  if (client.status === "end") return;
  if (client.status === "ready") {
    try {
      await Promise.race([client.quit(), new Promise((r) => setTimeout(r, 1_000).unref())]);
    } catch {
      // already closed
    }
  }
  client.disconnect();
}
