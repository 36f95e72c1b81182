// Connections through Redis Sentinel with real processes (test/helpers/sentinel.ts: one primary, one
// replica, three sentinels, passwords on both sides): the connection finds the primary, follows a
// kill -9 failover and a demotion, the scheduler's scripts run on a primary that never saw them
// (NOSCRIPT handled), and WAIT counts only replicas that hold the jobs (queues/replica-wait.ts).
import { mkdirSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  createRedis,
  closeRedis,
  waitReady,
  type RedisClient,
  type RedisTarget,
} from "../../src/infra/redis.js";
import { createRedisConnector } from "../../src/infra/redis-connector.js";
import { isRedisUnavailable } from "../../src/api/problem.js";
import { createScheduler, type Scheduler } from "../../src/queues/scheduler.js";
import { createJobStore } from "../../src/queues/job-store.js";
import { createReplicaWait } from "../../src/queues/replica-wait.js";
import { startSentinels, type SentinelDeployment, type SpawnedRedis } from "../helpers/sentinel.js";
import { spawnRedis } from "../helpers/processes.js";
import { uniquePrefix } from "../helpers/redis.js";

/** How long a failover may take here (detection 1 s, election, promotion) on a loaded machine. */
const FAILOVER_WITHIN_MS = Number(process.env.TEST_FAILOVER_WITHIN_MS ?? 30_000);
/** The API profile's command timeout in this test, and the bound of a failing command's answer. */
const API_TIMEOUT_MS = 1_000;
const FAST_FAIL_MS = API_TIMEOUT_MS + 1_500;

const PASSWORD = "data-nodes-secret-0123456789";
const SENTINEL_PASSWORD = "sentinels-secret-0123456789";

let dir: string;
let dep: SentinelDeployment;
const prefix = uniquePrefix();
const opened: RedisClient[] = [];

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function connect(profile: "api" | "worker" | "subscriber", target: RedisTarget = dep.target()): RedisClient {
  const c = createRedis(target, profile, `test-${profile}`, { commandTimeoutMs: API_TIMEOUT_MS });
  opened.push(c);
  return c;
}

function scheduler(redis: RedisClient, pipelineMax = 0): Scheduler {
  return createScheduler({
    redis,
    prefix,
    clock: Date.now,
    leaseTtlMs: 5_000,
    maxAttempts: 3,
    retentionS: 3600,
    retentionCount: 1000,
    pipelineMax,
  });
}

let seq = 0;
async function admit(s: Scheduler): Promise<string> {
  const id = `job_sentinel_${++seq}`;
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
  return id;
}

/** The server a client is connected to (its socket's remote port). */
const serverPort = (c: RedisClient) =>
  (c as unknown as { stream?: { remotePort?: number } }).stream?.remotePort;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "rg-sentinel-"));
  dep = await startSentinels(dir, { replicas: 1, password: PASSWORD, sentinelPassword: SENTINEL_PASSWORD });
}, 60_000);

afterAll(async () => {
  for (const c of opened) await closeRedis(c);
  await dep?.stop();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

describe("connections through Sentinel", () => {
  it("reach the primary the sentinels name, with the data nodes' and the sentinels' passwords", async () => {
    const primary = await dep.primary();
    for (const profile of ["api", "worker", "subscriber"] as const) {
      const c = connect(profile);
      await waitReady(c, 10_000);
      expect(serverPort(c)).toBe(primary.port);
    }
    const c = connect("worker");
    await waitReady(c, 10_000);
    expect(((await c.call("ROLE")) as unknown[])[0]).toBe("master");
    await c.set(`${prefix}:hello`, "1");
    expect(await dep.client(primary).get(`${prefix}:hello`)).toBe("1");

    // A wrong sentinel password reaches no primary (the password is really passed on).
    const wrong = connect("api", {
      ...dep.target(),
      sentinelPassword: "wrong-password-0123456789",
    } as RedisTarget);
    await expect(waitReady(wrong, 3_000)).rejects.toThrow(/not reachable/);
    await closeRedis(wrong);
  });

  it("run the scheduler's scripts, and again after the script cache was flushed (NOSCRIPT)", async () => {
    const primary = await dep.primary();
    const worker = connect("worker");
    const api = connect("api");
    await Promise.all([waitReady(worker, 10_000), waitReady(api, 10_000)]);
    const store = createJobStore(worker, prefix);
    for (const [s, label] of [
      [scheduler(worker), "plain"],
      [scheduler(api, 4), "pipelined"],
    ] as const) {
      const first = await admit(s);
      // The cache is emptied under the live connection: the next EVALSHA gets NOSCRIPT, and ioredis
      // sends the script itself (EVAL) instead.
      await dep.client(primary).call("SCRIPT", "FLUSH");
      await dep.client(primary).call("CONFIG", "RESETSTAT");
      const second = await admit(s);
      const [a, b] = await Promise.all([store.read(first), store.read(second)]);
      expect([a?.job.status, b?.job.status], label).toEqual(["queued", "queued"]);
      // NOSCRIPT really happened: the error counter of EVALSHA moved.
      const stats = await dep.client(primary).info("errorstats");
      expect(stats, label).toMatch(/errorstat_NOSCRIPT:count=[1-9]/);
    }
  });

  it("follow a kill -9 failover: API commands fail fast meanwhile, worker commands wait and run on the new primary", async () => {
    const old = await dep.primary();
    const api = connect("api");
    const worker = connect("worker");
    const sub = connect("subscriber");
    await Promise.all([waitReady(api, 10_000), waitReady(worker, 10_000), waitReady(sub, 10_000)]);
    const apiScheduler = scheduler(api, 4);
    const store = createJobStore(api, prefix, { pipelineMax: 4 });
    const before = await admit(apiScheduler);
    // Replicated before the kill, so it survives it.
    expect(await dep.client(old).wait(1, 5_000)).toBe(1);
    const channel = `${prefix}:ch:test`;
    const messages: string[] = [];
    sub.on("message", (_ch: string, m: string) => messages.push(m));
    await sub.subscribe(channel);

    await old.kill("SIGKILL");
    const killedAt = Date.now();
    // A worker's command waits in the offline queue and runs once the new primary is reached.
    const queued = worker.set(`${prefix}:queued`, "ran");
    // The API's commands meanwhile: each fails at once as "unavailable", until one succeeds.
    const failures: { ms: number; unavailable: boolean; message: string }[] = [];
    let firstOk = 0;
    while (Date.now() - killedAt < FAILOVER_WITHIN_MS) {
      const t0 = Date.now();
      try {
        await store.read(before);
        firstOk = Date.now();
        break;
      } catch (err) {
        failures.push({ ms: Date.now() - t0, unavailable: isRedisUnavailable(err), message: String(err) });
      }
      await sleep(100);
    }
    const promoted = await dep.waitForFailover(old, FAILOVER_WITHIN_MS);
    expect(promoted).not.toBe(old);
    expect(firstOk, "the API connection reached the new primary").toBeGreaterThan(0);
    expect(failures.length).toBeGreaterThan(0);
    expect(failures.filter((f) => !f.unavailable).map((f) => f.message)).toEqual([]);
    expect(Math.max(...failures.map((f) => f.ms))).toBeLessThan(FAST_FAIL_MS);
    console.log(
      `[sentinel] kill -9 → first API command answered ${firstOk - killedAt} ms later ` +
        `(${failures.length} fast failures meanwhile, slowest ${Math.max(...failures.map((f) => f.ms))} ms)`,
    );

    await queued;
    const promotedClient = dep.client(promoted);
    expect(await promotedClient.get(`${prefix}:queued`)).toBe("ran");
    for (const c of [api, worker]) expect(serverPort(c)).toBe(promoted.port);
    // The job replicated before the kill is there; the scripts run on a primary that never saw them.
    expect((await store.read(before))?.job.status).toBe("queued");
    const after = await admit(apiScheduler);
    expect((await store.read(after))?.job.status).toBe("queued");
    await promotedClient.call("SCRIPT", "FLUSH");
    const flushed = await admit(scheduler(worker));
    expect((await store.read(flushed))?.job.status).toBe("queued");
    // The subscriber resubscribed on the new primary.
    await until(async () => {
      await promotedClient.publish(channel, "after");
      return messages.includes("after");
    });

    // The old primary comes back as a replica of the new one.
    await dep.rejoin(old, promoted);
    await dep.waitSettled(FAILOVER_WITHIN_MS);
  }, 90_000);

  it("leave a primary that hangs (SIGSTOP) once the sentinels announce its replacement", async () => {
    // A frozen server keeps its sockets open: nothing but Sentinel's +switch-master (the process's
    // failover watch, infra/failover-watch.ts) tells the connections to leave it.
    let frozen: SpawnedRedis | undefined;
    const connector = createRedisConnector(dep.target(), {
      commandTimeoutMs: API_TIMEOUT_MS,
      reconnectMaxMs: 500,
    });
    try {
      const api = connector.connect("api", "test-frozen-api");
      const worker = connector.connect("worker", "test-frozen-worker");
      opened.push(api, worker);
      await Promise.all([waitReady(api, 10_000), waitReady(worker, 10_000)]);
      const old = await dep.primary();
      expect(serverPort(api)).toBe(old.port);
      const store = createJobStore(api, prefix);
      const before = await admit(scheduler(worker));
      expect(await dep.client(old).wait(1, 5_000)).toBe(1);

      process.kill(old.pid, "SIGSTOP");
      frozen = old;
      const stoppedAt = Date.now();
      let promotedAt = 0;
      const promotion = dep.waitForFailover(old, FAILOVER_WITHIN_MS).then((n) => {
        promotedAt = Date.now();
        return n;
      });
      // (awaited below; a failure before that must not leave it rejected unhandled)
      promotion.catch(() => undefined);
      const queued = worker.set(`${prefix}:frozen`, "ran");
      const failures: { ms: number; unavailable: boolean; message: string }[] = [];
      let firstOk = 0;
      while (Date.now() - stoppedAt < FAILOVER_WITHIN_MS) {
        const t0 = Date.now();
        try {
          await store.read(before);
          firstOk = Date.now();
          break;
        } catch (err) {
          failures.push({ ms: Date.now() - t0, unavailable: isRedisUnavailable(err), message: String(err) });
        }
        await sleep(100);
      }
      expect(firstOk, "the API connection left the frozen primary").toBeGreaterThan(0);
      expect(failures.filter((f) => !f.unavailable).map((f) => f.message)).toEqual([]);
      expect(Math.max(...failures.map((f) => f.ms))).toBeLessThan(FAST_FAIL_MS);
      const promoted = await promotion;
      await queued;
      expect(await dep.client(promoted).get(`${prefix}:frozen`)).toBe("ran");
      expect([serverPort(api), serverPort(worker)]).toEqual([promoted.port, promoted.port]);
      console.log(
        `[sentinel] SIGSTOP → promotion seen ${promotedAt - stoppedAt} ms, ` +
          `first API command answered ${firstOk - stoppedAt} ms later ` +
          `(${failures.length} failures meanwhile, slowest ${Math.max(...failures.map((f) => f.ms))} ms)`,
      );
      // The frozen server is replaced by a replica of the new primary.
      await dep.rejoin(old, promoted);
      frozen = undefined;
      await dep.waitSettled(FAILOVER_WITHIN_MS);
    } finally {
      // Left frozen by a failure above, it would not stop.
      if (frozen) process.kill(frozen.pid, "SIGCONT");
      await connector.close();
    }
  }, 90_000);

  it("leave a demoted primary: writes fail as unavailable until they reach the new primary", async () => {
    const old = await dep.primary();
    const api = connect("api");
    await waitReady(api, 10_000);
    expect(serverPort(api)).toBe(old.port);
    const s = scheduler(api);
    // A manual failover: the sentinels promote the replica and turn this primary into its replica,
    // alive and answering (what a partition that heals leaves behind).
    const sentinel = createRedis(
      { kind: "url", url: `redis://:${SENTINEL_PASSWORD}@127.0.0.1:${dep.sentinels[0]!.port}` },
      "worker",
      "test-sentinel",
    );
    opened.push(sentinel);
    await sentinel.call("SENTINEL", "FAILOVER", dep.name);
    const errors: string[] = [];
    let admitted: string | undefined;
    const deadline = Date.now() + FAILOVER_WITHIN_MS;
    while (!admitted && Date.now() < deadline) {
      try {
        const id = await admit(s);
        if (serverPort(api) !== old.port) admitted = id;
      } catch (err) {
        expect(isRedisUnavailable(err), String(err)).toBe(true);
        errors.push(String(err).slice(0, 60));
      }
      await sleep(50);
    }
    const promoted = await dep.waitForFailover(old, FAILOVER_WITHIN_MS);
    expect(admitted, `errors meanwhile: ${errors.join(" | ")}`).toBeDefined();
    expect(serverPort(api)).toBe(promoted.port);
    expect(await dep.client(promoted).hget(`${prefix}:job:${admitted}`, "status")).toBe("queued");
    // The old primary is a replica now (the sentinels reconfigure it right after the promotion).
    await until(async () => ((await dep.client(old).call("ROLE")) as unknown[])[0] === "slave");
  }, 90_000);
});

describe("a connection answered READONLY", () => {
  it("is dropped and made again (the write fails as unavailable; the next reaches a primary)", async () => {
    // Two standalone servers: the connection's server is turned into a replica behind its back
    // (the sentinels would also kill its clients; here nothing does).
    for (const d of ["ro-a", "ro-b"]) mkdirSync(join(dir, d));
    const a = await spawnRedis(join(dir, "ro-a"));
    const b = await spawnRedis(join(dir, "ro-b"));
    try {
      const api = connect("api", { kind: "url", url: a.url });
      await waitReady(api, 10_000);
      let reconnects = 0;
      api.on("reconnecting", () => reconnects++);
      const direct = connect("worker", { kind: "url", url: a.url });
      await direct.call("REPLICAOF", "127.0.0.1", String(b.port));
      const refused = await api.set(`${prefix}:ro`, "1").catch((err: unknown) => err);
      expect(String(refused)).toMatch(/^ReplyError: READONLY/);
      expect(isRedisUnavailable(refused)).toBe(true);
      await until(async () => reconnects > 0);
      await direct.call("REPLICAOF", "NO", "ONE");
      await until(async () => (await api.set(`${prefix}:ro`, "2")) === "OK");
    } finally {
      await a.stop();
      await b.stop();
    }
  });
});

/** Polls `check` every 50 ms until it returns true (an error counts as false). */
async function until(check: () => Promise<boolean>, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check().catch(() => false))) {
    if (Date.now() > deadline) throw new Error(`not within ${timeoutMs} ms`);
    await sleep(50);
  }
}

describe("Redis WAIT before an acknowledgement", () => {
  it("counts a replica only when it holds the writes made before the call, on any connection", async () => {
    await dep.waitSettled(FAILOVER_WITHIN_MS);
    const primary = await dep.primary();
    const replica = dep.nodes.find((n) => n !== primary)!;
    const api = connect("api");
    const waiter = connect("api");
    await Promise.all([waitReady(api, 10_000), waitReady(waiter, 10_000)]);
    const wait = createReplicaWait({ redis: waiter, prefix, replicas: 1, timeoutMs: 300 });
    await admit(scheduler(api));
    expect(await wait()).toBe(1);

    // The replica stops (SIGSTOP: connected, silent). A job admitted now is on the primary alone:
    // the WAIT on the other connection must not count the replica (a bare WAIT there would: the
    // replica has every write that connection made before).
    process.kill(replica.pid, "SIGSTOP");
    try {
      await admit(scheduler(api));
      const started = Date.now();
      const counted = await Promise.all([wait(), wait(), wait()]);
      expect(counted).toEqual([0, 0, 0]);
      expect(Date.now() - started).toBeGreaterThanOrEqual(300);
    } finally {
      process.kill(replica.pid, "SIGCONT");
    }
    await until(async () => (await wait()) === 1);
  }, 60_000);
});
