// Where Redis is (REDIS_URL, REDIS_SENTINELS or REDIS_CLUSTER_NODES) and what every connection is
// given for it: the environment's rules, and the ioredis options of each profile (docs/decisions.md
// "Redis high availability", "Redis Cluster"). The failover itself is test/integration/sentinel.test.ts,
// the Cluster test/integration/cluster.test.ts.
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { pino } from "pino";
import { describe, expect, it } from "vitest";
import { parseEnv } from "../../src/config/env.js";
import {
  clusterConnectionOptions,
  connectionOptions,
  createOutageLog,
  reconnectDelay,
  type RedisTarget,
} from "../../src/infra/redis.js";
import { configuredRedisTarget } from "../../src/main/redis-target.js";
import { parseSwitchMaster } from "../../src/infra/failover-watch.js";
import type { Redis } from "ioredis";
import { EventEmitter } from "node:events";

const refusal = (source: Record<string, string>): string => {
  try {
    parseEnv(source);
  } catch (err) {
    return String(err);
  }
  return "";
};

const SENTINELS = { REDIS_SENTINELS: "s1:26379, s2:26380,[::1]:26381,s4", REDIS_SENTINEL_NAME: "main" };

describe("REDIS_SENTINELS and its settings", () => {
  it("parse host:port lists (IPv6 in brackets, 26379 when no port is given)", () => {
    const env = parseEnv(SENTINELS);
    expect(env.REDIS_SENTINELS).toEqual([
      { host: "s1", port: 26379 },
      { host: "s2", port: 26380 },
      { host: "::1", port: 26381 },
      { host: "s4", port: 26379 },
    ]);
    expect(env.REDIS_WAIT_REPLICAS).toBe(0);
    expect(env.REDIS_WAIT_MS).toBe(500);
  });

  it.each(["s1:0", "s1:70000", "http://s1:26379", "s1:26379:1", " , "])("refuse %j", (list) => {
    expect(refusal({ REDIS_SENTINELS: list, REDIS_SENTINEL_NAME: "main" })).toContain("REDIS_SENTINELS");
  });

  it("need a name, and exclude REDIS_URL", () => {
    expect(refusal({ REDIS_SENTINELS: "s1" })).toContain("REDIS_SENTINELS needs REDIS_SENTINEL_NAME");
    expect(refusal({ ...SENTINELS, REDIS_URL: "redis://r:6379" })).toContain(
      "set one of REDIS_URL, REDIS_SENTINELS and REDIS_CLUSTER_NODES, not REDIS_URL and REDIS_SENTINELS",
    );
  });

  it("refuse the Sentinel-only settings without Sentinel (REDIS_URL carries credentials and TLS)", () => {
    for (const [name, value] of [
      ["REDIS_SENTINEL_NAME", "main"],
      ["REDIS_SENTINEL_PASSWORD", "pw"],
      ["REDIS_SENTINEL_TLS", "true"],
    ] as const) {
      expect(refusal({ REDIS_URL: "redis://r:6379", [name]: value })).toContain(
        `${name} applies with REDIS_SENTINELS only`,
      );
      expect(refusal({ REDIS_CLUSTER_NODES: "n1", [name]: value })).toContain(
        `${name} applies with REDIS_SENTINELS only`,
      );
    }
    for (const [name, value] of [
      ["REDIS_USERNAME", "rg"],
      ["REDIS_PASSWORD", "pw"],
      ["REDIS_TLS", "true"],
    ] as const) {
      expect(refusal({ REDIS_URL: "redis://r:6379", [name]: value })).toContain(
        `${name} applies with REDIS_SENTINELS or REDIS_CLUSTER_NODES only`,
      );
      expect(refusal({ REDIS_CLUSTER_NODES: "n1", [name]: value })).toBe("");
    }
  });

  it("take a CA file only where TLS is on, and WAIT only with a Redis that can have replicas", () => {
    expect(refusal({ REDIS_URL: "redis://r:6379", REDIS_TLS_CA_FILE: "/ca.pem" })).toContain(
      "REDIS_TLS_CA_FILE needs TLS",
    );
    expect(refusal({ REDIS_URL: "rediss://r:6379", REDIS_TLS_CA_FILE: "/ca.pem" })).toBe("");
    expect(refusal({ ...SENTINELS, REDIS_SENTINEL_TLS: "yes", REDIS_TLS_CA_FILE: "/ca.pem" })).toBe("");
    expect(refusal({ REDIS_WAIT_REPLICAS: "1" })).toContain("the embedded one has none");
    expect(refusal({ REDIS_URL: "redis://r:6379", REDIS_WAIT_REPLICAS: "1" })).toBe("");
    expect(refusal({ ...SENTINELS, REDIS_WAIT_REPLICAS: "1", REDIS_WAIT_MS: "0" })).toContain(
      "REDIS_WAIT_MS",
    );
  });
});

describe("REDIS_CLUSTER_NODES and its settings", () => {
  it("parse host:port lists (6379 when no port is given)", () => {
    expect(parseEnv({ REDIS_CLUSTER_NODES: "n1:7000, n2,[::1]:7002" }).REDIS_CLUSTER_NODES).toEqual([
      { host: "n1", port: 7000 },
      { host: "n2", port: 6379 },
      { host: "::1", port: 7002 },
    ]);
  });

  it.each(["n1:0", "redis://n1:7000", " , "])("refuse %j", (list) => {
    expect(refusal({ REDIS_CLUSTER_NODES: list })).toContain("REDIS_CLUSTER_NODES");
  });

  it("exclude REDIS_URL and REDIS_SENTINELS", () => {
    expect(refusal({ REDIS_CLUSTER_NODES: "n1", REDIS_URL: "redis://r:6379" })).toContain(
      "not REDIS_URL and REDIS_CLUSTER_NODES",
    );
    expect(refusal({ REDIS_CLUSTER_NODES: "n1", ...SENTINELS })).toContain(
      "not REDIS_SENTINELS and REDIS_CLUSTER_NODES",
    );
  });

  it("need a prefix with a hash tag, so that every key of it is in one slot", () => {
    for (const prefix of ["rg", "{}rg", "rg{", "}rg{"]) {
      expect(refusal({ REDIS_CLUSTER_NODES: "n1", REDIS_PREFIX: prefix })).toContain(
        "REDIS_CLUSTER_NODES needs a REDIS_PREFIX with a hash tag",
      );
    }
    for (const prefix of ["{rg}", "app{rg}", "{rg-2}x"]) {
      expect(refusal({ REDIS_CLUSTER_NODES: "n1", REDIS_PREFIX: prefix })).toBe("");
    }
    // Without a Cluster any prefix goes (one server holds every slot).
    expect(refusal({ REDIS_URL: "redis://r:6379", REDIS_PREFIX: "rg" })).toBe("");
  });

  it("take WAIT and a CA file with TLS", () => {
    expect(refusal({ REDIS_CLUSTER_NODES: "n1", REDIS_WAIT_REPLICAS: "1" })).toBe("");
    expect(refusal({ REDIS_CLUSTER_NODES: "n1", REDIS_TLS_CA_FILE: "/ca.pem" })).toContain(
      "REDIS_TLS_CA_FILE needs TLS",
    );
    expect(refusal({ REDIS_CLUSTER_NODES: "n1", REDIS_TLS: "1", REDIS_TLS_CA_FILE: "/ca.pem" })).toBe("");
  });
});

describe("the Redis target", () => {
  it("is the Cluster's nodes with the data nodes' credentials and TLS", () => {
    expect(
      configuredRedisTarget(
        parseEnv({ REDIS_CLUSTER_NODES: "n1:7000,n2:7001", REDIS_USERNAME: "rg", REDIS_PASSWORD: "pw" }),
      ),
    ).toEqual({
      kind: "cluster",
      nodes: [
        { host: "n1", port: 7000 },
        { host: "n2", port: 7001 },
      ],
      username: "rg",
      password: "pw",
      tls: false,
    });
  });

  it("is the URL, the sentinels with credentials and TLS, or none (embedded)", () => {
    expect(configuredRedisTarget(parseEnv({}))).toBeUndefined();
    expect(configuredRedisTarget(parseEnv({ REDIS_URL: "redis://r:6379" }))).toEqual({
      kind: "url",
      url: "redis://r:6379",
    });
    const dir = mkdtempSync(join(tmpdir(), "rg-ca-"));
    try {
      const ca = join(dir, "ca.pem");
      writeFileSync(ca, "-----BEGIN CERTIFICATE-----\n");
      const target = configuredRedisTarget(
        parseEnv({
          ...SENTINELS,
          REDIS_USERNAME: "rg",
          REDIS_PASSWORD: "data-pw",
          REDIS_SENTINEL_PASSWORD: "sentinel-pw",
          REDIS_TLS: "true",
          REDIS_TLS_CA_FILE: ca,
        }),
      );
      expect(target).toMatchObject({
        kind: "sentinel",
        name: "main",
        username: "rg",
        password: "data-pw",
        sentinelPassword: "sentinel-pw",
        tls: true,
        sentinelTls: false,
        ca: "-----BEGIN CERTIFICATE-----\n",
      });
      expect(() =>
        configuredRedisTarget(
          parseEnv({ ...SENTINELS, REDIS_TLS: "1", REDIS_TLS_CA_FILE: join(dir, "nope") }),
        ),
      ).toThrow(/REDIS_TLS_CA_FILE: cannot read/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe("connection options", () => {
  const sentinel: RedisTarget = {
    kind: "sentinel",
    sentinels: [
      { host: "s1", port: 26379 },
      { host: "s2", port: 26380 },
    ],
    name: "main",
    password: "data-pw",
    sentinelPassword: "sentinel-pw",
    tls: true,
    sentinelTls: true,
    ca: "CA",
  };

  it("reach the primary through the sentinels, passing credentials and TLS to both sides", () => {
    const { url, options } = connectionOptions(sentinel, "worker", "rg-worker");
    expect(url).toBeUndefined();
    expect(options).toMatchObject({
      sentinels: [
        { host: "s1", port: 26379 },
        { host: "s2", port: 26380 },
      ],
      name: "main",
      role: "master",
      password: "data-pw",
      sentinelPassword: "sentinel-pw",
      tls: { ca: "CA" },
      enableTLSForSentinelMode: true,
      sentinelTLS: { ca: "CA" },
      failoverDetector: false,
      connectionName: "rg-worker",
    });
    expect(options.username).toBeUndefined();
    const plain = connectionOptions({ ...sentinel, tls: false, sentinelTls: false }, "api", "x").options;
    expect(plain.tls).toBeUndefined();
    expect(plain.sentinelTLS).toBeUndefined();
    expect(plain.enableTLSForSentinelMode).toBeUndefined();
  });

  it("keep the profiles: the API fails fast, workers and subscribers queue and wait", () => {
    for (const target of [sentinel, { kind: "url", url: "redis://r:6379" } as const]) {
      const api = connectionOptions(target, "api", "a", { commandTimeoutMs: 750 }).options;
      expect(api).toMatchObject({ enableOfflineQueue: false, maxRetriesPerRequest: 1, commandTimeout: 750 });
      for (const profile of ["worker", "subscriber"] as const) {
        const o = connectionOptions(target, profile, "w").options;
        expect(o).toMatchObject({ enableOfflineQueue: true, maxRetriesPerRequest: null });
        expect(o.commandTimeout).toBeUndefined();
      }
      // A subscriber's channels are subscribed again by infra/kept-subscriptions.ts, not by ioredis
      // (whose SUBSCRIBE nobody observes).
      expect(connectionOptions(target, "subscriber", "s").options.autoResubscribe).toBe(false);
    }
  });

  it("reconnect with a capped backoff, also when every sentinel is unreachable", () => {
    expect([1, 2, 3, 4, 5, 30].map((n) => reconnectDelay(n, 1_000))).toEqual([
      100, 200, 400, 800, 1000, 1000,
    ]);
    const o = connectionOptions(sentinel, "api", "a", { reconnectMaxMs: 300 }).options;
    expect([1, 2, 9].map((n) => o.retryStrategy!(n))).toEqual([100, 200, 300]);
    expect([1, 9].map((n) => o.sentinelRetryStrategy!(n))).toEqual([100, 300]);
  });

  it("drop a connection answered READONLY (a demoted primary), and only then", () => {
    const { reconnectOnError } = connectionOptions(sentinel, "api", "a").options;
    const reply = (m: string) => Object.assign(new Error(m), { name: "ReplyError" });
    expect(reconnectOnError!(reply("READONLY You can't write against a read only replica."))).toBe(true);
    expect(reconnectOnError!(reply("ERR wrong number of arguments"))).toBe(false);
    expect(reconnectOnError!(reply("NOSCRIPT No matching script"))).toBe(false);
  });

  it("give a rediss:// URL the extra CA, and a plain URL nothing", () => {
    expect(
      connectionOptions({ kind: "url", url: "rediss://r:6380", ca: "CA" }, "api", "a").options.tls,
    ).toEqual({
      ca: "CA",
    });
    expect(connectionOptions({ kind: "url", url: "redis://r:6379" }, "api", "a").options.tls).toBeUndefined();
  });
});

describe("Cluster connection options", () => {
  const cluster: RedisTarget = {
    kind: "cluster",
    nodes: [
      { host: "n1", port: 7000 },
      { host: "n2", port: 7001 },
    ],
    username: "rg",
    password: "pw",
    tls: true,
    ca: "CA",
  };

  it("give every node the profile's connection settings, credentials and TLS", () => {
    const { nodes, options } = clusterConnectionOptions(cluster, "api", "rg-api", { commandTimeoutMs: 750 });
    expect(nodes).toEqual(cluster.nodes);
    expect(options).toMatchObject({ enableOfflineQueue: false, enableAutoPipelining: true });
    expect(options.redisOptions).toMatchObject({
      connectionName: "rg-api",
      commandTimeout: 750,
      maxRetriesPerRequest: 1,
      username: "rg",
      password: "pw",
      tls: { ca: "CA" },
    });
    // The Cluster reconnects and queues; its nodes' own settings must not say otherwise.
    expect(options.redisOptions).not.toHaveProperty("retryStrategy");
    expect(options.redisOptions).not.toHaveProperty("enableOfflineQueue");
    const subscriber = clusterConnectionOptions(cluster, "subscriber", "s").options;
    expect(subscriber.redisOptions).not.toHaveProperty("autoResubscribe");
    const plain = clusterConnectionOptions({ ...cluster, tls: false }, "api", "a").options;
    expect(plain.redisOptions?.tls).toBeUndefined();
  });

  it("fail fast in the API (CLUSTERDOWN not retried, few redirections); wait in the other profiles", () => {
    const api = clusterConnectionOptions(cluster, "api", "a").options;
    expect(api).toMatchObject({ retryDelayOnClusterDown: 0 });
    expect(api.maxRedirections).toBeLessThanOrEqual(5);
    for (const profile of ["worker", "subscriber"] as const) {
      const o = clusterConnectionOptions(cluster, profile, "w", { reconnectMaxMs: 300 }).options;
      expect(o).toMatchObject({ enableOfflineQueue: true });
      expect(o.redisOptions).toMatchObject({ maxRetriesPerRequest: null });
      expect(o.redisOptions?.commandTimeout).toBeUndefined();
      expect(o.retryDelayOnClusterDown).toBeUndefined();
      expect(o.maxRedirections).toBeGreaterThanOrEqual(1_000);
      expect([1, 9].map((n) => (o.clusterRetryStrategy as (t: number) => number)(n))).toEqual([100, 300]);
    }
  });
});

describe("the outage log", () => {
  /** A stand-in for the events ioredis emits on a client (nothing else of it is used). */
  const fakeClient = () => new EventEmitter() as unknown as Redis;

  it("says once per outage that Redis was lost, and once that every connection is back", () => {
    const lines: { level: number; msg: string; downMs?: number }[] = [];
    const logger = pino(
      { level: "info" },
      { write: (s: string) => void lines.push(JSON.parse(s) as (typeof lines)[number]) },
    );
    let now = 1_000;
    const log = createOutageLog(logger, () => now);
    const a = fakeClient();
    const b = fakeClient();
    log.watch(a, "a");
    log.watch(b, "b");
    for (const c of [a, b]) c.emit("ready");
    expect(lines).toEqual([]);
    // Both drop; each retries many times.
    for (let i = 0; i < 5; i++) {
      a.emit("error", new Error("connect ECONNREFUSED"));
      a.emit("reconnecting");
      b.emit("reconnecting");
    }
    expect(lines.map((l) => l.msg)).toEqual(["redis connection lost; reconnecting"]);
    now = 3_500;
    a.emit("ready");
    expect(lines).toHaveLength(1);
    b.emit("ready");
    expect(lines.map((l) => [l.msg, l.downMs])).toEqual([
      ["redis connection lost; reconnecting", undefined],
      ["redis reachable again", 2_500],
    ]);
    // A connection that never was ready (still starting) is no outage.
    const c = fakeClient();
    log.watch(c, "c");
    c.emit("reconnecting");
    expect(lines).toHaveLength(2);
  });
});

describe("Sentinel's +switch-master message", () => {
  it("names the primary and its new address; anything else is not one", () => {
    expect(parseSwitchMaster("rg-primary 127.0.0.1 6379 10.0.0.2 6380")).toEqual({
      name: "rg-primary",
      to: { host: "10.0.0.2", port: 6380 },
    });
    expect(parseSwitchMaster("rg-primary 127.0.0.1 6379")).toBeUndefined();
    expect(parseSwitchMaster("rg-primary 127.0.0.1 6379 10.0.0.2 port")).toBeUndefined();
  });
});
