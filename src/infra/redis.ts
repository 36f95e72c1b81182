// Redis connections: the one place that knows where Redis is (a URL, a primary named by Sentinel, or
// a Redis Cluster) and how each kind of connection behaves, so the API fails fast while workers ride
// out restarts and failovers (docs/decisions.md "Redis high availability", "Redis Cluster").
import { Cluster, Redis, type ClusterOptions, type RedisOptions } from "ioredis";
import type { Logger } from "pino";
import { keepSubscriptions } from "./kept-subscriptions.js";
import { dataNodes, infoOfEach, isCluster, type RedisClient } from "./redis-client.js";

export type { RedisClient } from "./redis-client.js";

export type RedisProfile = "api" | "worker" | "subscriber";

export interface HostPort {
  readonly host: string;
  readonly port: number;
}

/**
 * Where Redis is. `url`: one server (`redis://` or `rediss://`, credentials in the URL). `sentinel`:
 * the primary the sentinels name `name`, followed across failovers; `username`/`password` are the data
 * nodes' (primary and replicas), `sentinelPassword` the sentinels' own; `tls` and `sentinelTls` turn on
 * TLS to the data nodes and to the sentinels. `cluster`: a Redis Cluster reached through any of
 * `nodes` (the client learns the others from them), `username`/`password`/`tls` every node's. `ca`:
 * PEM of extra CA certificates for any TLS.
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
    }
  | {
      readonly kind: "cluster";
      readonly nodes: readonly HostPort[];
      readonly username?: string;
      readonly password?: string;
      readonly tls: boolean;
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
 * - `subscriber`: pub/sub; reconnects and resubscribes forever (the resubscription is ours, not
 *   ioredis's: infra/kept-subscriptions.ts says why).
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
      return { ...base, enableOfflineQueue: true, maxRetriesPerRequest: null };
    case "subscriber":
      return { ...base, enableOfflineQueue: true, maxRetriesPerRequest: null, autoResubscribe: false };
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
  target: Exclude<RedisTarget, { kind: "cluster" }>,
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
 * What an ioredis `Cluster` is given for `target` in `profile`: the startup nodes and the options.
 * Each node connection gets the profile's per-connection settings (command timeout, retries per
 * request, connect and disconnect timeouts, credentials, TLS); the offline queue, auto-pipelining and
 * the reconnect backoff are the Cluster's own. Node connections do not reconnect on their own
 * (ioredis's default): a lost node is dropped and the slot table read again, so a promoted replica is
 * found through the nodes that remain.
 *
 * The `api` profile fails fast: a `CLUSTERDOWN` reply is not retried (`retryDelayOnClusterDown` 0:
 * the route answers 503 at once), and a command whose node connection closed is retried at most
 * `API_CLUSTER_REDIRECTIONS` times, 100 ms apart, after a slot table refresh (about a second in
 * all). The `worker` and `subscriber` profiles retry for minutes: a failover only delays them.
 */
export function clusterConnectionOptions(
  target: Extract<RedisTarget, { kind: "cluster" }>,
  profile: RedisProfile,
  name: string,
  s: ConnectionSettings = {},
): { readonly nodes: readonly HostPort[]; readonly options: ClusterOptions } {
  const maxMs = s.reconnectMaxMs ?? 1_000;
  // The Cluster owns these: its nodes take only per-connection settings. Its subscriptions live on a
  // connection of its own, which it subscribes again itself (observed).
  const {
    retryStrategy: _retry,
    autoResubscribe: _resubscribe,
    enableOfflineQueue,
    enableAutoPipelining,
    lazyConnect,
    ...perNode
  } = profileOptions(profile, s);
  const api = profile === "api";
  return {
    nodes: target.nodes.map((h) => ({ host: h.host, port: h.port })),
    options: {
      lazyConnect,
      enableOfflineQueue,
      ...(enableAutoPipelining === undefined ? {} : { enableAutoPipelining }),
      clusterRetryStrategy: (times: number) => reconnectDelay(times, maxMs),
      // The API answers 503 at once; the others wait as their offline queue does (a failover).
      ...(api
        ? { retryDelayOnClusterDown: 0, maxRedirections: API_CLUSTER_REDIRECTIONS }
        : { maxRedirections: WAITING_CLUSTER_REDIRECTIONS }),
      slotsRefreshTimeout: 2_000,
      redisOptions: {
        ...perNode,
        connectionName: name,
        ...(target.username === undefined ? {} : { username: target.username }),
        ...(target.password === undefined ? {} : { password: target.password }),
        ...(target.tls ? { tls: tlsOf(target.ca) } : {}),
      },
    },
  };
}

/** How often the `api` profile's Cluster resends a command (MOVED, ASK, a node gone); ioredis: 16. */
export const API_CLUSTER_REDIRECTIONS = 5;
/**
 * The same for the waiting profiles: at ioredis's 100 ms between tries (CLUSTERDOWN, a node gone)
 * about 5 minutes, so a command outlives a failover (cluster-node-timeout, 15 s by default, and
 * the election) as the offline queue lets it outlive a Sentinel failover.
 */
export const WAITING_CLUSTER_REDIRECTIONS = 3_000;

/**
 * One log line per outage, not per attempt or connection: the first connection of the process that
 * loses Redis logs a warning, and once every connection that lost it is back, one line says so with
 * the outage's length and the server reached (the new primary after a failover).
 */
export interface OutageLog {
  watch(client: RedisClient, name: string): void;
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
  readonly track?: (client: RedisClient) => void;
}

/**
 * A connection to `target` in `profile`: a `Redis`, or a `Cluster` for a cluster target. Copies made
 * with `duplicate()` (BullMQ's blocking connections) get the same handling: errors swallowed, the
 * outage log, `track`, and a subscriber's channels kept across reconnects.
 */
export function createRedis(
  target: RedisTarget,
  profile: RedisProfile,
  name: string,
  opts: CreateRedisOptions = {},
): RedisClient {
  if (target.kind === "cluster") {
    const { nodes, options } = clusterConnectionOptions(target, profile, name, opts);
    return adopt(new Cluster([...nodes], options as never), name, opts);
  }
  const { url, options } = connectionOptions(target, profile, name, opts);
  // ioredis 6's option types disagree with exactOptionalPropertyTypes; the values are plain options.
  const client = url === undefined ? new Redis(options as never) : new Redis(url, options as never);
  return adopt(client, name, opts);
}

function adopt<C extends RedisClient>(client: C, name: string, opts: CreateRedisOptions): C {
  // Errors surface through the commands that fail; the event itself must not crash the process.
  client.on("error", () => undefined);
  opts.outages?.watch(client, name);
  opts.track?.(client);
  if (!isCluster(client) && client.options.autoResubscribe === false) keepSubscriptions(client);
  // Redis.duplicate(options) and Cluster.duplicate(nodes, options): the copy is made as asked.
  const duplicate = (client.duplicate as (...a: unknown[]) => C).bind(client);
  (client as { duplicate: unknown }).duplicate = (...args: unknown[]) =>
    adopt(duplicate(...args), `${name}-copy`, opts);
  return client;
}

/** A target as it may be logged: the URL without credentials, the sentinels and the name, or the nodes. */
export function describeTarget(target: RedisTarget): string {
  if (target.kind === "cluster")
    return `cluster via ${target.nodes.map((h) => `${h.host}:${h.port}`).join(",")}`;
  if (target.kind === "sentinel") {
    return `sentinel ${target.name} via ${target.sentinels.map((h) => `${h.host}:${h.port}`).join(",")}`;
  }
  if (!URL.canParse(target.url)) return "redis";
  const u = new URL(target.url);
  return `${u.protocol}//${u.host}`;
}

/** Resolves once the client is ready, or rejects after `timeoutMs`. */
export async function waitReady(client: RedisClient, timeoutMs: number): Promise<void> {
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
 * On a Cluster every master is asked.
 * @throws Error naming the policy found.
 */
export async function assertNoEviction(client: RedisClient): Promise<void> {
  const nodes = dataNodes(client);
  if (nodes.length === 0) throw new Error("Redis Cluster: no master known (cluster unreachable)");
  for (const node of nodes) await assertNodeNoEviction(node);
}

async function assertNodeNoEviction(client: Redis): Promise<void> {
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

/**
 * Replicas connected to the primary `client` is on (INFO replication `connected_slaves`); on a
 * Cluster the fewest any master has.
 */
export async function connectedReplicas(client: RedisClient): Promise<number> {
  const counts = (await infoOfEach(client, "replication")).map((info) =>
    Number(/connected_slaves:(\d+)/.exec(info)?.[1] ?? 0),
  );
  return Math.min(...counts);
}

/** Quits gracefully, or disconnects at once when the server is gone. Idempotent. */
export async function closeRedis(client: RedisClient): Promise<void> {
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
