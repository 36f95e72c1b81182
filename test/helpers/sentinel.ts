// A Redis Sentinel deployment of real processes for the failover tests and benchmarks: one primary,
// its replicas (`--replicaof`) and three sentinels (Debian's `redis-server --sentinel`, a config file
// each in a temp dir) with short detection and failover times, so a failover takes seconds. Data
// nodes run without persistence; every process is stopped by `stop()` (and killed when the process
// exits). Nothing here needs vitest: bench/failover.ts uses it too.
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { Redis } from "ioredis";
import { freeLoopbackPort, spawnRedisServer, type RedisServer } from "../../src/infra/embedded-redis.js";
import type { HostPort, RedisTarget } from "../../src/infra/redis.js";

/** A redis-server (data node or sentinel) of a deployment. */
export interface SpawnedRedis {
  readonly url: string;
  readonly port: number;
  readonly pid: number;
  readonly dir: string;
  /** Sends `signal` (default SIGKILL); resolves once the process has exited. */
  kill(signal?: NodeJS.Signals): Promise<void>;
  stop(): Promise<void>;
}

const live = new Set<RedisServer>();
let exitHook = false;

/**
 * A redis-server on 127.0.0.1 (a free port unless given) with its files in `dir`; without `conf`
 * it runs without persistence (test/helpers/cluster.ts uses it too).
 */
export async function spawnServer(
  dir: string,
  args: readonly string[],
  o: { conf?: string; port?: number } = {},
): Promise<SpawnedRedis> {
  if (!exitHook) {
    exitHook = true;
    // Last resort (a crashed run): no server outlives this process.
    process.once("exit", () => {
      for (const s of live) void s.kill("SIGKILL");
    });
  }
  let server: RedisServer;
  try {
    server = await spawnRedisServer({
      ...(o.conf === undefined ? {} : { confPath: o.conf }),
      dir,
      port: o.port ?? (await freeLoopbackPort()),
      extraArgs: [...(o.conf === undefined ? ["--save", "", "--appendonly", "no"] : []), ...args],
    });
  } catch (err) {
    // A server given a log file (logTo) writes why it stopped there, not to its output.
    const log = tail(logPath(dir), 10);
    if (log.length === 0) throw err;
    throw new Error(`${(err as Error).message}\n${logPath(dir)}:\n${log.join("\n")}`, { cause: err });
  }
  live.add(server);
  const kill = async (signal: NodeJS.Signals = "SIGKILL") => {
    await server.kill(signal);
    live.delete(server);
  };
  return {
    url: server.url,
    port: server.port,
    pid: server.pid,
    dir,
    kill,
    stop: async () => {
      await server.stop();
      live.delete(server);
    },
  };
}

export interface SentinelOptions {
  /** Replicas of the first primary (default 1). */
  readonly replicas?: number;
  /** The sentinels' `down-after-milliseconds`: how long a primary must be silent to be down (default 1000). */
  readonly downAfterMs?: number;
  /** The sentinels' `failover-timeout` (default 3000). */
  readonly failoverTimeoutMs?: number;
  /** `requirepass` and `masterauth` of the data nodes (and the sentinels' `auth-pass`). */
  readonly password?: string;
  /** `requirepass` of the sentinels (and their `sentinel-pass` to one another). */
  readonly sentinelPassword?: string;
  /** The primary's name in the sentinels' configuration (default `rg-primary`). */
  readonly name?: string;
}

export interface SentinelDeployment {
  readonly name: string;
  readonly sentinels: readonly HostPort[];
  /** The data nodes, the first primary first. */
  readonly nodes: readonly SpawnedRedis[];
  /** What a gateway process is given to reach the primary through the sentinels. */
  env(): Record<string, string>;
  /** The same as a target of src/infra/redis.ts. */
  target(): RedisTarget;
  /** The node the sentinels name as primary now (asks one sentinel that answers). */
  primary(): Promise<SpawnedRedis>;
  /**
   * Waits until every sentinel names a primary other than `old` and that node says it is a primary;
   * returns it.
   */
  waitForFailover(old: SpawnedRedis, timeoutMs: number): Promise<SpawnedRedis>;
  /**
   * Starts `node` again (after a kill) as a replica of `primary`, on its port and dir: what an
   * operator or a config manager does with a server that comes back after a failover (left alone,
   * the sentinels turn a returning old primary into a replica only after about 8 s). Returns its
   * new handle, which also replaces it in `nodes`.
   */
  rejoin(node: SpawnedRedis, primary: SpawnedRedis): Promise<SpawnedRedis>;
  /**
   * Waits until every sentinel knows the others and the primary's replicas (a failover can then
   * happen) and the primary has every other node as a replica online; returns the primary. That is
   * not always the node a failover promoted: on a loaded machine a new primary can miss the
   * sentinels' pings for `downAfterMs` and be replaced in turn (a local run with busy loops saw
   * the sentinels fail back to the old node once it had rejoined).
   */
  waitSettled(timeoutMs: number): Promise<SpawnedRedis>;
  /** A plain client of one data node (for assertions; closed by `stop`). */
  client(node: SpawnedRedis): Redis;
  stop(): Promise<void>;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
/** How long the state quoted by a timed-out wait waits for each server's answer. */
const PROBE_MS = 1_000;
/** Each server logs to `redis.log` in its dir: a wait that times out quotes the sentinels' events. */
const logPath = (dir: string) => resolve(dir, "redis.log");
const logTo = (dir: string) => ["--logfile", logPath(dir)];
/** The last `n` lines of `path` that `keep` keeps (none when it cannot be read). */
const tail = (path: string, n: number, keep: (line: string) => boolean = (l) => l !== "") => {
  try {
    return readFileSync(path, "utf8").split("\n").filter(keep).slice(-n);
  } catch {
    return [];
  }
};
/** The last `n` event lines (`+sdown`, `+switch-master`, …) of a sentinel's log. */
const lastEvents = (dir: string, n: number) => tail(logPath(dir), n, (l) => / [+-][a-z]/.test(l));
/** `p`, or `fallback` once `ms` have passed (a frozen server never answers a probe). */
const within = <T>(p: Promise<T>, ms: number, fallback: T): Promise<T> => {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<T>((r) => (timer = setTimeout(() => r(fallback), ms)));
  return Promise.race([p, late]).finally(() => clearTimeout(timer));
};

/** Starts the data nodes and the sentinels in `dir`; resolves once the sentinels are settled. */
export async function startSentinels(dir: string, o: SentinelOptions = {}): Promise<SentinelDeployment> {
  const name = o.name ?? "rg-primary";
  // A replica's full sync starts at once (Redis 7 waits 5 s for more replicas by default).
  const auth = [
    "--repl-diskless-sync-delay",
    "0",
    ...(o.password === undefined ? [] : ["--requirepass", o.password, "--masterauth", o.password]),
  ];
  const nodes: SpawnedRedis[] = [];
  const sentinelServers: SpawnedRedis[] = [];
  const clients: Redis[] = [];
  const nodeDir = (i: number) => {
    const d = join(dir, `node-${i}`);
    mkdirSync(d, { recursive: true });
    return d;
  };
  const stop = async () => {
    for (const c of clients) c.disconnect();
    for (const s of [...sentinelServers, ...nodes, ...retired]) await s.stop();
  };
  const retired: SpawnedRedis[] = [];
  try {
    const primary = await spawnServer(nodeDir(0), [...auth, ...logTo(nodeDir(0))]);
    nodes.push(primary);
    for (let i = 1; i <= (o.replicas ?? 1); i++) {
      nodes.push(
        await spawnServer(nodeDir(i), [
          ...auth,
          ...logTo(nodeDir(i)),
          "--replicaof",
          "127.0.0.1",
          String(primary.port),
        ]),
      );
    }
    for (let i = 0; i < 3; i++) {
      const d = join(dir, `sentinel-${i}`);
      mkdirSync(d, { recursive: true });
      const conf = join(d, "sentinel.conf");
      writeFileSync(
        conf,
        [
          `sentinel monitor ${name} 127.0.0.1 ${primary.port} 2`,
          `sentinel down-after-milliseconds ${name} ${o.downAfterMs ?? 1_000}`,
          `sentinel failover-timeout ${name} ${o.failoverTimeoutMs ?? 3_000}`,
          `sentinel parallel-syncs ${name} 1`,
          ...(o.password === undefined ? [] : [`sentinel auth-pass ${name} ${o.password}`]),
          ...(o.sentinelPassword === undefined
            ? []
            : [`requirepass ${o.sentinelPassword}`, `sentinel sentinel-pass ${o.sentinelPassword}`]),
          "",
        ].join("\n"),
      );
      sentinelServers.push(await spawnServer(d, [...logTo(d), "--sentinel"], { conf }));
    }
  } catch (err) {
    await stop();
    throw err;
  }

  const sentinels = sentinelServers.map((s) => ({ host: "127.0.0.1", port: s.port }));
  const client = (node: SpawnedRedis | HostPort, password = o.password) => {
    const c = new Redis({
      host: "127.0.0.1",
      port: node.port,
      ...(password === undefined ? {} : { password }),
      // A command sent while the connection is down (the sentinels kill a reconfigured node's
      // clients) waits for the reconnect, or fails after two attempts when the node is gone.
      maxRetriesPerRequest: 1,
      enableOfflineQueue: true,
      retryStrategy: () => 50,
      lazyConnect: false,
    });
    c.on("error", () => undefined);
    clients.push(c);
    return c;
  };
  const sentinelClients = sentinels.map((s) => client(s, o.sentinelPassword));
  const nodeClients = new Map<SpawnedRedis, Redis>();
  const nodeClient = (n: SpawnedRedis) => {
    let c = nodeClients.get(n);
    if (!c) nodeClients.set(n, (c = client(n)));
    return c;
  };
  /** The primary's port as each sentinel names it (undefined for a sentinel that does not answer). */
  const named = () =>
    Promise.all(
      sentinelClients.map((c) =>
        (c.call("SENTINEL", "get-master-addr-by-name", name) as Promise<[string, string]>).then(
          (r) => Number(r[1]),
          () => undefined,
        ),
      ),
    );
  const nodeOf = (port: number | undefined) => nodes.find((n) => n.port === port);
  const role = (n: SpawnedRedis) =>
    nodeClient(n)
      .call("ROLE")
      .then(
        (r) => String((r as unknown[])[0]),
        () => undefined,
      );
  const onlineReplicas = (n: SpawnedRedis) =>
    nodeClient(n)
      .info("replication")
      .then(
        (info) => [...info.matchAll(/^slave\d+:.*state=online/gm)].length,
        () => 0,
      );
  /** SENTINEL subcommand replies as maps (one per entry for a list). */
  const asMap = (flat: unknown): Map<string, string> => {
    const m = new Map<string, string>();
    const a = flat as string[];
    for (let i = 0; i + 1 < a.length; i += 2) m.set(a[i]!, a[i + 1]!);
    return m;
  };
  /**
   * Every sentinel names the same primary, sees it up, knows the two other sentinels and `replicas`
   * replicas that are up with their link to it up (so it could promote one), and the primary has
   * that many replicas online.
   */
  const settled = async (replicas: number): Promise<SpawnedRedis | undefined> => {
    const ports = await named();
    const primary = nodeOf(ports[0]);
    if (!primary || ports.some((p) => p !== primary.port)) return undefined;
    const views = await Promise.all(
      sentinelClients.map(async (c) => {
        try {
          const master = asMap(await c.call("SENTINEL", "master", name));
          const good = ((await c.call("SENTINEL", "replicas", name)) as unknown[])
            .map(asMap)
            .filter((r) => r.get("flags") === "slave" && r.get("master-link-status") === "ok");
          return (
            master.get("port") === String(primary.port) &&
            master.get("flags") === "master" &&
            Number(master.get("num-other-sentinels")) === 2 &&
            good.length >= replicas
          );
        } catch {
          return false;
        }
      }),
    );
    return views.every(Boolean) && (await onlineReplicas(primary)) >= replicas ? primary : undefined;
  };
  /** What each sentinel and data node says now: the message of a wait that timed out. */
  const describeState = async (): Promise<string> => {
    const lines = await Promise.all(
      sentinelClients.map(async (c, i) => {
        const view = async () => {
          try {
            const master = asMap(await c.call("SENTINEL", "master", name));
            const replicas = ((await c.call("SENTINEL", "replicas", name)) as unknown[])
              .map(asMap)
              .map((r) => `:${r.get("port")} ${r.get("flags")} link ${r.get("master-link-status")}`);
            return (
              `names :${master.get("port")} ${master.get("flags")}, ` +
              `${master.get("num-other-sentinels")} other sentinels, replicas [${replicas.join("; ")}]`
            );
          } catch (err) {
            return (err as Error).message;
          }
        };
        return `sentinel :${sentinels[i]!.port} ${await within(view(), PROBE_MS, "no answer")}`;
      }),
    );
    for (const n of nodes) {
      const [r, online] = await Promise.all([
        within(role(n), PROBE_MS, undefined),
        within(onlineReplicas(n), PROBE_MS, 0),
      ]);
      lines.push(`node :${n.port} ${r ?? "no answer"}, ${online} replicas online`);
    }
    for (const s of sentinelServers) lines.push(`sentinel :${s.port} log:`, ...lastEvents(s.dir, 30));
    return lines.join("\n");
  };
  const until = async <T>(what: string, timeoutMs: number, check: () => Promise<T | undefined>) => {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const v = await check();
      if (v !== undefined) return v;
      if (Date.now() > deadline) {
        throw new Error(
          `sentinel deployment: ${what} not within ${timeoutMs} ms; now:\n${await describeState()}`,
        );
      }
      await sleep(50);
    }
  };

  const deployment: SentinelDeployment = {
    name,
    sentinels,
    nodes,
    env: () => ({
      REDIS_SENTINELS: sentinels.map((s) => `${s.host}:${s.port}`).join(","),
      REDIS_SENTINEL_NAME: name,
      ...(o.password === undefined ? {} : { REDIS_PASSWORD: o.password }),
      ...(o.sentinelPassword === undefined ? {} : { REDIS_SENTINEL_PASSWORD: o.sentinelPassword }),
    }),
    target: () => ({
      kind: "sentinel",
      sentinels,
      name,
      ...(o.password === undefined ? {} : { password: o.password }),
      ...(o.sentinelPassword === undefined ? {} : { sentinelPassword: o.sentinelPassword }),
      tls: false,
      sentinelTls: false,
    }),
    async primary() {
      return until("a sentinel naming the primary", 10_000, async () => {
        for (const port of await named()) if (nodeOf(port)) return nodeOf(port);
        return undefined;
      });
    },
    async waitForFailover(old, timeoutMs) {
      return until(`a failover away from :${old.port}`, timeoutMs, async () => {
        const ports = await named();
        const port = ports[0];
        if (port === undefined || port === old.port || ports.some((p) => p !== port)) return undefined;
        const node = nodeOf(port);
        if (!node || (await role(node)) !== "master") return undefined;
        return node;
      });
    },
    async waitSettled(timeoutMs) {
      return until("sentinels that know each other and the replicas", timeoutMs, () =>
        settled(nodes.length - 1),
      );
    },
    async rejoin(node, primary) {
      await node.kill("SIGKILL");
      const i = nodes.indexOf(node);
      const again = await spawnServer(
        node.dir,
        [...auth, ...logTo(node.dir), "--replicaof", "127.0.0.1", String(primary.port)],
        {
          port: node.port,
        },
      );
      if (i >= 0) nodes[i] = again;
      retired.push(node);
      const c = nodeClients.get(node);
      if (c) {
        nodeClients.delete(node);
        nodeClients.set(again, c);
      }
      return again;
    },
    client: (node) => nodeClient(node),
    stop,
  };
  try {
    await deployment.waitSettled(30_000);
  } catch (err) {
    await stop();
    throw err;
  }
  return deployment;
}
