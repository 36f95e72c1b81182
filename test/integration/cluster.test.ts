// Connections to a Redis Cluster of real processes (test/helpers/cluster.ts: three masters, a replica
// each, a password on every node): the connector's clients run the scheduler's scripts (single calls
// and script pipelines) on the master of the prefix's slot, two prefixes on two masters side by side,
// BullMQ's queue and worker, pub/sub from a script, WAIT on the prefix's master, the start checks on
// every master; a master killed (kill -9) fails over with the API's
// commands failing fast and the worker's waiting, the scripts running on the promoted replica
// (NOSCRIPT handled); a master killed with its replica takes the cluster down: every API command then
// fails at once as "unavailable" (docs/decisions.md "Redis Cluster").
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Queue, Worker } from "bullmq";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  assertNoEviction,
  closeRedis,
  connectedReplicas,
  waitReady,
  type RedisClient,
} from "../../src/infra/redis.js";
import { readRedisMemory } from "../../src/infra/redis-memory.js";
import { createReplicaWait } from "../../src/queues/replica-wait.js";
import { createRedisConnector, type RedisConnector } from "../../src/infra/redis-connector.js";
import { isCluster } from "../../src/infra/redis-client.js";
import { isRedisUnavailable } from "../../src/api/problem.js";
import { createScheduler, type Scheduler } from "../../src/queues/scheduler.js";
import { createJobStore } from "../../src/queues/job-store.js";
import { createKeys } from "../../src/queues/keys.js";
import { startCluster, type RedisClusterDeployment } from "../helpers/cluster.js";
import { uniquePrefix } from "../helpers/redis.js";

/** How long a Cluster failover may take here (cluster-node-timeout 1 s, election) on a loaded machine. */
const FAILOVER_WITHIN_MS = Number(process.env.TEST_FAILOVER_WITHIN_MS ?? 30_000);
/** The API profile's command timeout here; a failing command answers well within the bound. */
const API_TIMEOUT_MS = 1_000;
const FAST_FAIL_MS = Number(process.env.TEST_CLUSTER_FAST_FAIL_MS ?? 3_000);
const PASSWORD = "cluster-nodes-secret-0123456789";

let dir: string;
let dep: RedisClusterDeployment;
let connector: RedisConnector;
const opened: RedisClient[] = [];
const prefix = uniquePrefix();

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function connect(profile: "api" | "worker" | "subscriber"): Promise<RedisClient> {
  const c = connector.connect(profile, `test-${profile}`);
  opened.push(c);
  await waitReady(c, 10_000);
  return c;
}

function scheduler(redis: RedisClient, p = prefix, pipelineMax = 0): Scheduler {
  return createScheduler({
    redis,
    prefix: p,
    clock: Date.now,
    leaseTtlMs: 5_000,
    maxAttempts: 3,
    retentionS: 3600,
    retentionCount: 1000,
    pipelineMax,
  });
}

let seq = 0;
async function admit(s: Scheduler): Promise<{ id: string; position: number }> {
  const id = `job_cluster_${++seq}`;
  const res = await s.admit({
    id,
    route: "flux/schnell",
    priority: "normal",
    fields: {
      cust: "c1",
      prio: "normal",
      mod: "image",
      fam: "flux",
      mdl: "schnell",
      task: "t2i",
      fmt: "1024",
    },
    request: JSON.stringify({ prompt: "a lighthouse" }),
    serviceMs: 1000,
    capacity: 2,
  });
  if (!res.admitted) throw new Error(`not admitted: ${res.reason}`);
  return { id, position: res.position };
}

/** The keys of `p` on each master that holds any (SCAN on every master). */
async function keysByMaster(p: string): Promise<Map<number, string[]>> {
  const out = new Map<number, string[]>();
  for (const m of await dep.masters()) {
    const keys: string[] = [];
    let cursor = "0";
    do {
      const [next, batch] = await dep.client(m).scan(cursor, "MATCH", `${p}*`, "COUNT", 1000);
      cursor = next;
      keys.push(...batch);
    } while (cursor !== "0");
    if (keys.length > 0) out.set(m.port, keys);
  }
  return out;
}

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "rg-cluster-"));
  dep = await startCluster(dir, { masters: 3, replicas: 1, password: PASSWORD });
  connector = createRedisConnector(dep.target(), { commandTimeoutMs: API_TIMEOUT_MS, reconnectMaxMs: 500 });
}, 60_000);

afterAll(async () => {
  for (const c of opened) await closeRedis(c);
  await connector?.close();
  await dep?.stop();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

describe("connections to a Redis Cluster", () => {
  it("run the scheduler's scripts, single and in script pipelines, on the master of the prefix's slot", async () => {
    const api = await connect("api");
    const worker = await connect("worker");
    expect(isCluster(api) && isCluster(worker)).toBe(true);
    const admitted = [];
    for (const s of [scheduler(api, prefix, 4), scheduler(worker)]) {
      admitted.push(...(await Promise.all([admit(s), admit(s), admit(s)])));
    }
    expect(admitted.map((a) => a.position).sort((a, b) => a - b)).toEqual([0, 1, 2, 3, 4, 5]);
    const store = createJobStore(api, prefix, { pipelineMax: 4 });
    const reads = await Promise.all(admitted.map((a) => store.read(a.id)));
    expect(reads.map((r) => r?.job.status)).toEqual(Array(6).fill("queued"));
    // Every key the scripts wrote is on one master: the one serving the prefix's hash tag.
    const home = await dep.masterOf(createKeys(prefix).queue);
    const where = await keysByMaster(prefix);
    expect([...where.keys()]).toEqual([home.port]);
    expect(where.get(home.port)).toContain(createKeys(prefix).job(admitted[0]!.id));
  });

  it("keep two prefixes on two masters apart, each one's scripts on its own master", async () => {
    const api = await connect("api");
    const home = await dep.masterOf(createKeys(prefix).queue);
    let other = uniquePrefix();
    while ((await dep.masterOf(createKeys(other).queue)).port === home.port) other = uniquePrefix();
    const s = scheduler(api, other, 4);
    // One event-loop turn: the calls of both prefixes are batched, each prefix in its own pipeline.
    const [a, b] = await Promise.all([admit(s), admit(scheduler(api, prefix, 4))]);
    expect(a.position).toBe(0);
    expect(b.position).toBeGreaterThan(0);
    const where = await keysByMaster(other);
    expect([...where.keys()]).toEqual([(await dep.masterOf(createKeys(other).queue)).port]);
  });

  it("carry BullMQ's queue and worker (blocking copies made with duplicate()) under the prefix", async () => {
    const worker = await connect("worker");
    const queue = new Queue("cluster-test", { connection: worker, prefix });
    const done: unknown[] = [];
    const bull = new Worker("cluster-test", (job) => Promise.resolve((job.data as { n: number }).n * 2), {
      connection: worker,
      prefix,
    });
    bull.on("completed", (_job, value) => done.push(value));
    try {
      await queue.addBulk([1, 2, 3].map((n) => ({ name: "x", data: { n } })));
      for (let i = 0; i < 200 && done.length < 3; i++) await sleep(50);
      expect(done.sort()).toEqual([2, 4, 6]);
      // BullMQ's keys are the prefix's too: on its master, nowhere else.
      const where = await keysByMaster(`${prefix}:cluster-test`);
      expect([...where.keys()]).toEqual([(await dep.masterOf(createKeys(prefix).queue)).port]);
    } finally {
      await bull.close();
      await queue.close();
    }
  });

  it("deliver pub/sub messages published by a script on any master", async () => {
    const api = await connect("api");
    const sub = await connect("subscriber");
    const channel = `${prefix}:ch:test`;
    const got: string[] = [];
    sub.on("message", (ch: string, m: string) => {
      if (ch === channel) got.push(m);
    });
    await sub.subscribe(channel);
    await api.eval("redis.call('PUBLISH', ARGV[1], ARGV[2]) return 1", 1, `${prefix}:k`, channel, "one");
    let other = uniquePrefix();
    while ((await dep.masterOf(`${other}:k`)).port === (await dep.masterOf(`${prefix}:k`)).port)
      other = uniquePrefix();
    await api.eval("redis.call('PUBLISH', ARGV[1], ARGV[2]) return 1", 1, `${other}:k`, channel, "two");
    for (let i = 0; i < 100 && got.length < 2; i++) await sleep(20);
    expect(got.sort()).toEqual(["one", "two"]);
  });

  it("send WAIT to the prefix's master, counting its replica only while that replica keeps up", async () => {
    const api = await connect("api");
    const waiter = await connect("api");
    const wait = createReplicaWait({ redis: waiter, prefix, replicas: 1, timeoutMs: 300 });
    await admit(scheduler(api));
    expect(await wait()).toBe(1);
    const home = await dep.masterOf(createKeys(prefix).queue);
    const role = (await dep.client(home).call("ROLE")) as [string, number, [string, string, string][]];
    const replica = dep.nodes.find((n) => role[2].some((r) => Number(r[1]) === n.port))!;
    process.kill(replica.pid, "SIGSTOP");
    try {
      await admit(scheduler(api));
      expect(await wait()).toBe(0);
    } finally {
      process.kill(replica.pid, "SIGCONT");
    }
    expect(await wait()).toBe(1);
  });

  it("run the start checks on every master: eviction policy, replicas, memory", async () => {
    const api = await connect("api");
    await assertNoEviction(api);
    expect(await connectedReplicas(api)).toBe(1);
    const memory = await readRedisMemory(api);
    // The project's redis.conf: 1 GB and noeviction on every node.
    expect(memory).toMatchObject({ maxBytes: 1024 ** 3, policy: "noeviction" });
    const masters = await dep.masters();
    await dep.client(masters[1]!).config("SET", "maxmemory-policy", "allkeys-lru");
    try {
      await expect(assertNoEviction(api)).rejects.toThrow(/allkeys-lru/);
    } finally {
      await dep.client(masters[1]!).config("SET", "maxmemory-policy", "noeviction");
    }
  });

  it("follow a master killed (kill -9) to its promoted replica: API commands fail fast, worker commands wait", async () => {
    const api = await connect("api");
    const worker = await connect("worker");
    const sub = await connect("subscriber");
    const store = createJobStore(api, prefix, { pipelineMax: 4 });
    const before = await admit(scheduler(api, prefix, 4));
    const old = await dep.masterOf(createKeys(prefix).queue);
    // Replicated before the kill, so it survives it.
    expect(await dep.client(old).wait(1, 5_000)).toBe(1);
    const channel = `${prefix}:ch:failover`;
    const got: string[] = [];
    sub.on("message", (ch: string, m: string) => {
      if (ch === channel) got.push(m);
    });
    await sub.subscribe(channel);

    await old.kill("SIGKILL");
    const killedAt = Date.now();
    const queued = worker.set(`${prefix}:queued`, "ran");
    const failures: { ms: number; unavailable: boolean; message: string }[] = [];
    let firstOk = 0;
    while (Date.now() - killedAt < FAILOVER_WITHIN_MS) {
      const t0 = Date.now();
      try {
        await store.read(before.id);
        firstOk = Date.now();
        break;
      } catch (err) {
        failures.push({ ms: Date.now() - t0, unavailable: isRedisUnavailable(err), message: String(err) });
      }
      await sleep(100);
    }
    expect(firstOk, "the API connection reached the promoted replica").toBeGreaterThan(0);
    expect(failures.filter((f) => !f.unavailable).map((f) => f.message)).toEqual([]);
    if (failures.length > 0) expect(Math.max(...failures.map((f) => f.ms))).toBeLessThan(FAST_FAIL_MS);
    console.log(
      `[cluster] kill -9 of a master → first API command answered ${firstOk - killedAt} ms later ` +
        `(${failures.length} fast failures meanwhile, slowest ${Math.max(0, ...failures.map((f) => f.ms))} ms)`,
    );
    await queued;
    const promoted = await dep.masterOf(createKeys(prefix).queue);
    expect(promoted.port).not.toBe(old.port);
    expect(await dep.client(promoted).get(`${prefix}:queued`)).toBe("ran");
    // The job replicated before the kill is there; the scripts run on a master that never saw them,
    // and again after a SCRIPT FLUSH under live connections (NOSCRIPT, then EVAL).
    expect((await store.read(before.id))?.job.status).toBe("queued");
    expect((await store.read((await admit(scheduler(api, prefix, 4))).id))?.job.status).toBe("queued");
    await dep.client(promoted).call("SCRIPT", "FLUSH");
    await dep.client(promoted).call("CONFIG", "RESETSTAT");
    expect((await store.read((await admit(scheduler(worker))).id))?.job.status).toBe("queued");
    expect(await dep.client(promoted).info("errorstats")).toMatch(/errorstat_NOSCRIPT:count=[1-9]/);
    // The subscription moved with the cluster.
    await api.eval("redis.call('PUBLISH', ARGV[1], ARGV[2]) return 1", 1, `${prefix}:k`, channel, "after");
    for (let i = 0; i < 250 && got.length === 0; i++) await sleep(20);
    expect(got).toEqual(["after"]);
  }, 60_000);

  it("answer every API command at once as unavailable while the cluster is down (a master and its replica killed)", async () => {
    const api = await connect("api");
    const store = createJobStore(api, prefix);
    const victim = await dep.masterOf(createKeys(prefix).queue);
    // Kill the master of the prefix's slot and every node replicating it: its slots have no one left.
    const role = (await dep.client(victim).call("ROLE")) as [string, number, [string, string, string][]];
    const followers = dep.nodes.filter((n) => role[2].some((r) => Number(r[1]) === n.port));
    for (const n of [victim, ...followers]) await n.kill("SIGKILL");
    await dep.waitState("fail", FAILOVER_WITHIN_MS);
    const answers: { ms: number; unavailable: boolean; message: string }[] = [];
    let other = uniquePrefix();
    while ((await dep.masterOf(`${other}:k`).catch(() => victim)).port === victim.port)
      other = uniquePrefix();
    for (const read of [() => store.read("job_cluster_1"), () => api.get(`${other}:k`)]) {
      for (let i = 0; i < 5; i++) {
        const t0 = Date.now();
        const err = await read().then(
          () => undefined,
          (e: unknown) => e,
        );
        answers.push({ ms: Date.now() - t0, unavailable: isRedisUnavailable(err), message: String(err) });
      }
    }
    expect(answers.filter((a) => !a.unavailable).map((a) => a.message)).toEqual([]);
    // CLUSTERDOWN is answered as it comes, not resent until ioredis gives up on redirections.
    expect(answers.filter((a) => a.message.includes("Too many Cluster redirections"))).toEqual([]);
    expect(Math.max(...answers.map((a) => a.ms))).toBeLessThan(FAST_FAIL_MS);
    console.log(
      `[cluster] cluster down: ${answers.length} API commands refused, slowest ${Math.max(...answers.map((a) => a.ms))} ms ` +
        `(${[...new Set(answers.map((a) => a.message.slice(0, 60)))].join("; ")})`,
    );
  }, 60_000);
});
