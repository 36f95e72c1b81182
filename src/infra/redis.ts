// Redis connections: the one place that knows where Redis is (a URL, or a primary named by Sentinel)
// and how each kind of connection behaves, so the API fails fast while workers ride out restarts and
// failovers (docs/decisions.md "Redis high availability").
import { Redis, type RedisOptions } from "ioredis";
import type { Logger } from "pino";

export type RedisProfile = "api" | "worker" | "subscriber";

export interface HostPort {
  readonly host: string;
  readonly port: number;
}

/**
 * Where Redis is. `url`: one server (`redis://` or `rediss://`, credentials in the URL). `sentinel`:
 * the primary the sentinels name `name`, followed across failovers; `username`/`password` are the data
 * nodes' (primary and replicas), `sentinelPassword` the sentinels' own; `tls` and `sentinelTls` turn on
 * TLS to the data nodes and to the sentinels. `ca`: PEM of extra CA certificates for either TLS.
 */
export type RedisTarget =
  | { readonly kind: "url"; readonly url: string; readonly ca?: string }
  | {
      readonly kind: "sentinel";
      readonly sentinels: readonly HostPort[];
      readonly name: string;
      readonly username?: string;
      readonly password?: string;
      readonly sentinelPassword?: string;
      readonly tls: boolean;
      readonly sentinelTls: boolean;
      readonly ca?: string;
    };

export interface ConnectionSettings {
  /** The `api` profile's command timeout (ms); default 2000. */
  readonly commandTimeoutMs?: number;
  /** The longest pause between two reconnect attempts (ms); default 1000. */
  readonly reconnectMaxMs?: number;
}

/**
 * Redis error replies after which the connection is dropped and made again: a primary demoted to a
 * replica answers writes with READONLY, and the next connection (through Sentinel) reaches the new
 * primary. The failed command itself is refused (the API answers 503, a worker retries).
 */
const RECONNECT_REPLY_RE = /^READONLY\b/;

/** The reconnect pause after `times` failed attempts: 100, 200, 400, 800 ms…, at most `maxMs`. */
export function reconnectDelay(times: number, maxMs: number): number {
  return Math.min(50 * 2 ** Math.min(times, 10), maxMs);
}

/**
 * Options per profile:
 * - `api`: no offline queue, one retry, a command timeout (default 2 s, REDIS_COMMAND_TIMEOUT_MS): a
 *   request never hangs on a dead Redis or during a failover, it fails at once and the route answers 503.
 * - `worker`: commands queue while disconnected and run after the reconnect (workers must finish
 *   what they started once Redis is back).
 * - `subscriber`: pub/sub; reconnects and resubscribes forever.
 * Every profile reconnects with a capped backoff and drops a connection answered with READONLY.
 */
function profileOptions(profile: RedisProfile, s: ConnectionSettings): RedisOptions {
  const maxMs = s.reconnectMaxMs ?? 1_000;
  const base: RedisOptions = {
    lazyConnect: false,
    retryStrategy: (times: number) => reconnectDelay(times, maxMs),
    connectTimeout: 2_000,
    // A dropped connection whose server does not close its side (a frozen primary left for a new
    // one) is destroyed after this, not the default 2 s: the reconnect starts sooner.
    disconnectTimeout: 200,
    reconnectOnError: (err: Error) => RECONNECT_REPLY_RE.test(err.message),
  };
  switch (profile) {
    case "api":
      // Commands issued in the same tick share one socket write (requests arrive in bursts).
      return {
        ...base,
        enableOfflineQueue: false,
        maxRetriesPerRequest: 1,
        commandTimeout: s.commandTimeoutMs ?? 2_000,
        enableAutoPipelining: true,
      };
    case "worker":
    case "subscriber":
      return { ...base, enableOfflineQueue: true, maxRetriesPerRequest: null };
  }
}

/** The TLS options of one side: the extra CA when given, else Node's bundled ones. */
const tlsOf = (ca: string | undefined) => (ca === undefined ? {} : { ca });

/**
 * What ioredis is given for `target` in `profile`: the URL (undefined through Sentinel) and the
 * options. Through Sentinel the client asks the sentinels for the primary on every (re)connect and
 * checks that the server it reached is a primary (`role: "master"`). A primary that was replaced
 * while alive is left when the sentinels announce the new one (the process's failover watch,
 * infra/redis-connector.ts), when they reconfigure it (they kill its clients) or when it answers
 * READONLY. ioredis's own `failoverDetector` stays off: its `+switch-master` handler can end a client
 * for good when the message arrives while that client is reconnecting (docs/decisions.md "Redis high
 * availability").
 */
export function connectionOptions(
  target: RedisTarget,
  profile: RedisProfile,
  name: string,
  s: ConnectionSettings = {},
): { readonly url?: string; readonly options: RedisOptions } {
  const options: RedisOptions = { ...profileOptions(profile, s), connectionName: name };
  if (target.kind === "url") {
    // A rediss:// URL turns TLS on; the extra CA only adds to what it trusts.
    const tls = target.url.startsWith("rediss:") && target.ca !== undefined ? { tls: tlsOf(target.ca) } : {};
    return { url: target.url, options: { ...options, ...tls } };
  }
  const maxMs = s.reconnectMaxMs ?? 1_000;
  return {
    options: {
      ...options,
      sentinels: target.sentinels.map((h) => ({ host: h.host, port: h.port })),
      name: target.name,
      role: "master",
      ...(target.username === undefined ? {} : { username: target.username }),
      ...(target.password === undefined ? {} : { password: target.password }),
      ...(target.sentinelPassword === undefined ? {} : { sentinelPassword: target.sentinelPassword }),
      ...(target.tls ? { tls: tlsOf(target.ca), enableTLSForSentinelMode: true } : {}),
      ...(target.sentinelTls ? { sentinelTLS: tlsOf(target.ca) } : {}),
      // All sentinels unreachable: ask them again after the same capped backoff.
      sentinelRetryStrategy: (times: number) => reconnectDelay(times, maxMs),
      failoverDetector: false,
    },
  };
}

/**
 * One log line per outage, not per attempt or connection: the first connection of the process that
 * loses Redis logs a warning, and once every connection that lost it is back, one line says so with
 * the outage's length and the server reached (the new primary after a failover).
 */
export interface OutageLog {
  watch(client: Redis, name: string): void;
}

export function createOutageLog(logger: Logger, clock: () => number = Date.now): OutageLog {
  const down = new Set<string>();
  let since = 0;
  let lastError: string | undefined;
  let seq = 0;
  return {
    watch(client, name) {
      const id = `${name}#${++seq}`;
      let wasReady = false;
      client.on("error", (err: Error) => {
        lastError = err.message;
      });
      client.on("ready", () => {
        wasReady = true;
        if (!down.delete(id) || down.size > 0) return;
        const stream = (client as unknown as { stream?: { remoteAddress?: string; remotePort?: number } })
          .stream;
        logger.info(
          {
            downMs: clock() - since,
            server: stream?.remoteAddress ? `${stream.remoteAddress}:${stream.remotePort}` : undefined,
          },
          "redis reachable again",
        );
      });
      const lost = () => {
        if (!wasReady || down.has(id)) return;
        if (down.size === 0) {
          since = clock();
          logger.warn({ connection: name, err: lastError }, "redis connection lost; reconnecting");
        }
        down.add(id);
      };
      client.on("reconnecting", lost);
      // A connection closed for good (shutdown) is no longer waited for.
      client.on("end", () => {
        down.delete(id);
      });
    },
  };
}

export interface CreateRedisOptions extends ConnectionSettings {
  /** The process's outage log. */
  readonly outages?: OutageLog;
  /** Told of the connection and of every copy made of it (`duplicate()`, as BullMQ's workers do). */
  readonly track?: (client: Redis) => void;
}

/**
 * A connection to `target` in `profile`. Copies made with `duplicate()` (BullMQ's blocking
 * connections) get the same handling: errors swallowed, the outage log, `track`.
 */
export function createRedis(
  target: RedisTarget,
  profile: RedisProfile,
  name: string,
  opts: CreateRedisOptions = {},
): Redis {
  const { url, options } = connectionOptions(target, profile, name, opts);
  // ioredis 6's option types disagree with exactOptionalPropertyTypes; the values are plain options.
  const client = url === undefined ? new Redis(options as never) : new Redis(url, options as never);
  return adopt(client, name, opts);
}

function adopt(client: Redis, name: string, opts: CreateRedisOptions): Redis {
  // Errors surface through the commands that fail; the event itself must not crash the process.
  client.on("error", () => undefined);
  opts.outages?.watch(client, name);
  opts.track?.(client);
  const duplicate = client.duplicate.bind(client);
  client.duplicate = (override) => adopt(duplicate(override), `${name}-copy`, opts);
  return client;
}

/** A target as it may be logged: the URL without credentials, or the sentinels and the name. */
export function describeTarget(target: RedisTarget): string {
  if (target.kind === "sentinel") {
    return `sentinel ${target.name} via ${target.sentinels.map((h) => `${h.host}:${h.port}`).join(",")}`;
  }
  if (!URL.canParse(target.url)) return "redis";
  const u = new URL(target.url);
  return `${u.protocol}//${u.host}`;
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

/** Replicas connected to the primary `client` is on (INFO replication `connected_slaves`). */
export async function connectedReplicas(client: Redis): Promise<number> {
  const info = await client.info("replication");
  return Number(/connected_slaves:(\d+)/.exec(info)?.[1] ?? 0);
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
