// A Redis Cluster of real processes for the Cluster tests: `masters` redis-servers (and `replicas`
// per master) with `cluster-enabled yes` and the project's redis.conf (noeviction) on free ports, each
// in its own folder of `dir`, joined by `redis-cli --cluster create … --cluster-yes`; ready once every
// node reports `cluster_state:ok`. `stop()` stops every process it started (by pid, through
// spawnServer). Nothing here needs vitest.
import { execFile } from "node:child_process";
import { mkdirSync } from "node:fs";
import { join, resolve } from "node:path";
import { promisify } from "node:util";
import { Redis } from "ioredis";
import type { HostPort, RedisTarget } from "../../src/infra/redis.js";
import { spawnServer, type SpawnedRedis } from "./sentinel.js";

const run = promisify(execFile);
const REDIS_CONF = resolve(import.meta.dirname, "../../redis.conf");

export interface ClusterOptions {
  /** Masters (default 3: the fewest `redis-cli --cluster create` accepts). */
  readonly masters?: number;
  /** Replicas of each master (default 0). */
  readonly replicas?: number;
  /** `cluster-node-timeout`: how long a node must be silent to be failed (default 1000 ms). */
  readonly nodeTimeoutMs?: number;
  /** `requirepass` and `masterauth` of every node. */
  readonly password?: string;
}

export interface RedisClusterDeployment {
  /** Every node, in the order `redis-cli --cluster create` was given them (masters first). */
  readonly nodes: readonly SpawnedRedis[];
  readonly startupNodes: readonly HostPort[];
  /** What a gateway process is given to reach the cluster. */
  env(): Record<string, string>;
  /** The same as a target of src/infra/redis.ts. */
  target(): RedisTarget;
  /** A plain client of one node (for assertions; closed by `stop`). */
  client(node: SpawnedRedis): Redis;
  /** The nodes that are masters serving slots now (CLUSTER NODES of a node that answers). */
  masters(): Promise<SpawnedRedis[]>;
  /** The master serving `key`'s slot now. */
  masterOf(key: string): Promise<SpawnedRedis>;
  /** Every key of one node (SCAN to the end). */
  keysOn(node: SpawnedRedis): Promise<string[]>;
  /** Every key of every master (SCAN on each; the cluster's whole keyspace). */
  allKeys(): Promise<string[]>;
  /** Waits until every node that is up reports `cluster_state:<state>`. */
  waitState(state: "ok" | "fail", timeoutMs: number): Promise<void>;
  stop(): Promise<void>;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Starts the nodes in `dir`, creates the cluster and resolves once its state is ok. */
export async function startCluster(dir: string, o: ClusterOptions = {}): Promise<RedisClusterDeployment> {
  const masters = o.masters ?? 3;
  const replicas = o.replicas ?? 0;
  const auth = o.password === undefined ? [] : ["--requirepass", o.password, "--masterauth", o.password];
  const nodes: SpawnedRedis[] = [];
  const clients = new Map<SpawnedRedis, Redis>();
  const stop = async () => {
    for (const c of clients.values()) c.disconnect();
    for (const n of nodes) await n.stop();
  };
  try {
    for (let i = 0; i < masters * (1 + replicas); i++) {
      const d = join(dir, `node-${i}`);
      mkdirSync(d, { recursive: true });
      nodes.push(
        await spawnServer(
          d,
          [
            "--cluster-enabled",
            "yes",
            "--cluster-config-file",
            join(d, "nodes.conf"),
            "--cluster-node-timeout",
            String(o.nodeTimeoutMs ?? 1_000),
            // A replica's full sync starts at once (Redis 7 waits 5 s for more replicas by default).
            "--repl-diskless-sync-delay",
            "0",
            ...auth,
          ],
          { conf: REDIS_CONF },
        ),
      );
    }
    await run("redis-cli", [
      ...(o.password === undefined ? [] : ["-a", o.password, "--no-auth-warning"]),
      "--cluster",
      "create",
      ...nodes.map((n) => `127.0.0.1:${n.port}`),
      "--cluster-replicas",
      String(replicas),
      "--cluster-yes",
    ]);
  } catch (err) {
    await stop();
    throw err;
  }

  const client = (node: SpawnedRedis) => {
    let c = clients.get(node);
    if (!c) {
      c = new Redis({
        host: "127.0.0.1",
        port: node.port,
        ...(o.password === undefined ? {} : { password: o.password }),
        maxRetriesPerRequest: 1,
        retryStrategy: () => 100,
      });
      c.on("error", () => undefined);
      clients.set(node, c);
    }
    return c;
  };
  const answering = async () => {
    for (const n of nodes) {
      const alive = await client(n)
        .ping()
        .then(
          () => true,
          () => false,
        );
      if (alive) return n;
    }
    throw new Error("no cluster node answers");
  };
  /** CLUSTER NODES lines: id, host:port@bus, flags, …, slots. */
  const view = async () =>
    String(await client(await answering()).call("CLUSTER", "NODES"))
      .trim()
      .split("\n")
      .map((l) => l.split(" "));
  const byPort = (addr: string) => nodes.find((n) => addr.startsWith(`127.0.0.1:${n.port}@`));
  const startupNodes = nodes.map((n) => ({ host: "127.0.0.1", port: n.port }));

  const deployment: RedisClusterDeployment = {
    nodes,
    startupNodes,
    env: () => ({
      REDIS_CLUSTER_NODES: startupNodes.map((h) => `${h.host}:${h.port}`).join(","),
      ...(o.password === undefined ? {} : { REDIS_PASSWORD: o.password }),
    }),
    target: () => ({
      kind: "cluster",
      nodes: startupNodes,
      ...(o.password === undefined ? {} : { password: o.password }),
      tls: false,
    }),
    client,
    async masters() {
      // Masters serving slots: right after the cluster is made (and under load) a node's view can
      // still call a new replica "master" (without slots) until gossip tells it otherwise, and its
      // keys would then be counted twice.
      return (await view())
        .filter((f) => f[2]!.split(",").includes("master") && !f[2]!.includes("fail") && f.length > 8)
        .map((f) => byPort(f[1]!))
        .filter((n) => n !== undefined);
    },
    async masterOf(key) {
      const slot = Number(await client(await answering()).call("CLUSTER", "KEYSLOT", key));
      for (const f of await view()) {
        if (!f[2]!.split(",").includes("master") || f[2]!.includes("fail")) continue;
        for (const range of f.slice(8)) {
          const [a, b] = range.split("-").map(Number);
          if (slot >= a! && slot <= (b ?? a!)) return byPort(f[1]!)!;
        }
      }
      throw new Error(`no master serves slot ${slot}`);
    },
    async keysOn(node) {
      const keys: string[] = [];
      let cursor = "0";
      do {
        const [next, batch] = await client(node).scan(cursor, "COUNT", 1000);
        cursor = next;
        keys.push(...batch);
      } while (cursor !== "0");
      return keys;
    },
    async allKeys() {
      const keys: string[] = [];
      for (const m of await deployment.masters()) keys.push(...(await deployment.keysOn(m)));
      return keys;
    },
    async waitState(state, timeoutMs) {
      const deadline = Date.now() + timeoutMs;
      for (;;) {
        const states = await Promise.all(
          nodes.map((n) =>
            client(n)
              .call("CLUSTER", "INFO")
              .then(
                (info) => /cluster_state:(\w+)/.exec(String(info))?.[1],
                () => undefined,
              ),
          ),
        );
        const up = states.filter((s) => s !== undefined);
        if (up.length > 0 && up.every((s) => s === state)) return;
        if (Date.now() > deadline) throw new Error(`cluster_state:${state} not within ${timeoutMs} ms`);
        await sleep(50);
      }
    },
    stop,
  };
  try {
    await deployment.waitState("ok", 30_000);
  } catch (err) {
    await stop();
    throw err;
  }
  return deployment;
}
