// Redis memory is bounded and the 503 path is real: the embedded server gets a maxmemory; near it
// the API refuses new jobs with 503 `unavailable` + Retry-After while reads go on; at it (OOM) a
// refused submit leaves nothing behind for long (its inline image is collected after the grace);
// an unbounded Redis is reported at start. Each test runs its own small redis-server.
import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { Redis } from "ioredis";
import { pino } from "pino";
import { afterEach, describe, expect, it } from "vitest";
import {
  spawnRedisServer,
  startEmbeddedRedis,
  type EmbeddedRedis,
  type RedisServer,
} from "../../src/infra/embedded-redis.js";
import { createFsBlobStore } from "../../src/infra/fs-blob-store.js";
import { readRedisMemory, warnIfUnbounded } from "../../src/infra/redis-memory.js";
import { createCasCollector } from "../../src/queues/cas-collector.js";
import {
  FLUX_SCHNELL_512,
  queueJob,
  setSimDown,
  startSystem,
  waitFor,
  type TestSystem,
} from "../helpers/system.js";
import { inlinePng } from "../helpers/images.js";

const MIB = 1024 ** 2;
const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

/** A throwaway redis-server with `maxmemory` (no AOF), stopped after the test. */
async function smallRedis(maxmemory: string | undefined): Promise<{ server: RedisServer; client: Redis }> {
  const dir = mkdtempSync(join(tmpdir(), "rg-mem-"));
  const server = await spawnRedisServer({
    dir,
    extraArgs: [
      "--appendonly",
      "no",
      "--save",
      "",
      "--maxmemory-policy",
      "noeviction",
      ...(maxmemory === undefined ? [] : ["--maxmemory", maxmemory]),
    ],
  });
  const client = new Redis(server.url, { maxRetriesPerRequest: 1 });
  cleanups.push(async () => {
    client.disconnect();
    await server.stop();
    rmSync(dir, { recursive: true, force: true });
  });
  return { server, client };
}

/** Fills Redis with junk until `used_memory` reaches `share` of maxmemory, or until it refuses (OOM). */
async function fill(client: Redis, share: number): Promise<"filled" | "oom"> {
  for (let i = 0; ; i++) {
    const m = await readRedisMemory(client);
    if (m.usedBytes >= share * m.maxBytes) return "filled";
    try {
      await client.set(`junk:${i}`, "x".repeat(64 * 1024));
    } catch (err) {
      if (String(err).includes("OOM")) return "oom";
      throw err;
    }
  }
}

async function system(url: string, env: Record<string, string>): Promise<TestSystem> {
  const sys = await startSystem({ worker: false, env: { REDIS_URL: url, ...env } });
  cleanups.push(() => sys.close());
  return sys;
}

describe("near Redis's memory limit", () => {
  it("refuses new jobs with 503 unavailable and Retry-After, keeps answering reads, and admits again once memory is freed", async () => {
    const { server, client } = await smallRedis("16mb");
    const sys = await system(server.url, { REDIS_MEMORY_ADMIT_MAX: "0.5", REDIS_MEMORY_CHECK_MS: "50" });
    const token = await sys.token("alice");
    const queued = await queueJob(sys, token, { ...FLUX_SCHNELL_512, prompt: "before" });

    expect(await fill(client, 0.6)).toBe("filled");
    const refused = await waitFor(async () => {
      const res = await sys.call("/queue", {
        method: "POST",
        token,
        body: JSON.stringify({ ...FLUX_SCHNELL_512, prompt: "near the limit" }),
      });
      return res.status === 503 && res;
    });
    const problem = (await refused.json()) as { error: string };
    expect(problem.error).toBe("unavailable");
    expect(Number(refused.headers.get("retry-after"))).toBeGreaterThanOrEqual(1);
    // The sync route goes through the same admission.
    const sync = await sys.call("/image/flux/schnell/t2i?format=512", {
      method: "POST",
      token,
      body: JSON.stringify({ prompt: "near the limit" }),
    });
    expect(sync.status).toBe(503);
    expect(((await sync.json()) as { error: string }).error).toBe("unavailable");
    // Reads still work: the job admitted before, the queue.
    expect((await sys.call(`/jobs/${queued}`, { token })).status).toBe(200);
    expect((await sys.call("/queue", { token })).status).toBe(200);
    // Still below maxmemory: what the refusal left free is there for running jobs to settle.
    const m = await readRedisMemory(client);
    expect(m.usedBytes).toBeLessThan(m.maxBytes);

    await client.flushdb().catch(() => undefined); // the junk and the test's keys alike
    await waitFor(async () => {
      const res = await sys.call("/queue", {
        method: "POST",
        token,
        body: JSON.stringify({ ...FLUX_SCHNELL_512, prompt: "after" }),
      });
      return res.status === 202;
    });
  });

  it("at the limit answers a submit 503, and the inline image it had stored is collected after the grace", async () => {
    const { server, client } = await smallRedis("16mb");
    // The watch reads once at start and not again: the submit meets Redis's own OOM reply.
    const sys = await system(server.url, {
      REDIS_MEMORY_ADMIT_MAX: "1",
      REDIS_MEMORY_CHECK_MS: "600000",
      CAS_GC_GRACE_S: "1",
    });
    const token = await sys.token("alice");
    const queued = await queueJob(sys, token, { ...FLUX_SCHNELL_512, prompt: "before" });
    expect(await fill(client, 2)).toBe("oom");
    // Hold it full: Redis frees a little now and then (query buffers), which would let a write in.
    const full = await readRedisMemory(client);
    await client.config("SET", "maxmemory", String(full.usedBytes - MIB));
    const image = await inlinePng("#0badf0");
    const res = await sys.call("/queue", {
      method: "POST",
      token,
      body: JSON.stringify({ ...FLUX_SCHNELL_512, task: "i2i", prompt: "p", image: image.data }),
    });
    expect(res.status).toBe(503);
    expect(((await res.json()) as { error: string }).error).toBe("unavailable");
    // Reads need no memory: they go on at the limit.
    expect((await sys.call(`/jobs/${queued}`, { token })).status).toBe(200);

    const hex = image.digest.slice("sha256-".length);
    const path = join(sys.dataDir, "cas", "sha256", hex.slice(0, 2), hex);
    expect(existsSync(path)).toBe(true); // stored before the refusal
    await client.config("SET", "maxmemory", "16mb");
    const keys = await client.keys("junk:*");
    for (let i = 0; i < keys.length; i += 500) await client.del(...keys.slice(i, i + 500));
    const collector = (offsetMs: number) =>
      createCasCollector({
        redis: client,
        prefix: sys.redis.prefix,
        sweeper: createFsBlobStore({ root: join(sys.dataDir, "cas") }),
        clock: () => Date.now() + offsetMs,
        // A grace far above the test's own duration, however slow the machine; the clock passes it.
        graceMs: 60_000,
        keepAfterMs: 0,
        batch: 100,
      });
    expect((await collector(0).runPass()).removed).toEqual([]); // within the grace
    expect((await collector(120_000).runPass()).removed).toEqual([image.digest]);
    expect(existsSync(path)).toBe(false);
  });
});

describe("at Redis's memory limit, admitted jobs go on", () => {
  /** Holds Redis over its limit: every write that may grow memory is refused (OOM) until `release`. */
  async function holdFull(client: Redis) {
    for (let i = 0; i < 20; i++) await client.set(`junk:${i}`, "x".repeat(64 * 1024));
    await client.config("SET", "maxmemory", "1mb");
    await expect(client.set("probe", "x")).rejects.toThrow(/OOM/);
    return async () => {
      await client.config("SET", "maxmemory", "64mb");
      await client.del(...(await client.keys("junk:*")));
    };
  }

  type Job = { status: string; attempts: number; error?: { code: string } };
  const jobOf = async (sys: TestSystem, token: string, id: string) =>
    (await (await sys.call(`/jobs/${id}`, { token })).json()) as Job;

  it("keeps renewing a running job's lease, so it settles once, not reaped and run again", async () => {
    const { server, client } = await smallRedis("64mb");
    // 4 steps of 1 s: the attempt outlives its 1.5 s lease several times over (renewed every
    // 500 ms, so a loaded machine's pauses do not let it lapse).
    const sys = await startSystem({
      env: { REDIS_URL: server.url, LOCK_MS: "1500", STALLED_INTERVAL_MS: "100", SIM_STEP_MS: "1000" },
    });
    cleanups.push(() => sys.close());
    const token = await sys.token("alice");
    const id = await queueJob(sys, token, { ...FLUX_SCHNELL_512, prompt: "long" });
    await waitFor(async () => (await jobOf(sys, token, id)).status === "running");
    const release = await holdFull(client);
    const done = await waitFor(async () => {
      const j = await jobOf(sys, token, id);
      return j.status !== "queued" && j.status !== "running" && j;
    }, 20_000);
    await release();
    expect(done).toMatchObject({ status: "complete", attempts: 1 });
  });

  it("does not spin an idle BullMQ worker on refused fetches", async () => {
    const { server, client } = await smallRedis("64mb");
    const sys = await startSystem({
      env: {
        REDIS_URL: server.url,
        SIM_STEP_MS: "300",
        SIM_CAPACITY: "1",
        WORKER_CONCURRENCY: "1",
        REDIS_MEMORY_CHECK_MS: "50",
      },
    });
    cleanups.push(() => sys.close());
    const token = await sys.token("alice");
    const ids: string[] = [];
    for (let i = 0; i < 3; i++)
      ids.push(await queueJob(sys, token, { ...FLUX_SCHNELL_512, prompt: `p${i}` }));
    await waitFor(async () => (await jobOf(sys, token, ids[0]!)).status === "running");
    // The attempts end while Redis is full: BullMQ's worker then fetches its next job, refused.
    const release = await holdFull(client);
    for (const id of ids) {
      await waitFor(async () => (await jobOf(sys, token, id)).status === "complete", 15_000);
    }
    await new Promise((r) => setTimeout(r, 500));
    const commands = async () =>
      Number(/total_commands_processed:(\d+)/.exec(await client.info("stats"))![1]);
    const before = await commands();
    await new Promise((r) => setTimeout(r, 2_000));
    const after = await commands();
    await release();
    // The worker's own timers (renewal, dispatch, reaping, publication) cost some dozens a second.
    expect(after - before).toBeLessThan(400);
    // Memory back: admitted again once the API's memory watch has read it, and the worker fetches
    // and runs jobs again.
    const next = await waitFor(async () => {
      const res = await sys.call("/queue", {
        method: "POST",
        token,
        body: JSON.stringify({ ...FLUX_SCHNELL_512, prompt: "after" }),
      });
      const body = (await res.json()) as { id?: string; error?: string };
      if (res.status === 503 && body.error === "unavailable") return undefined;
      expect(res.status).toBe(202);
      return body.id;
    });
    await waitFor(async () => (await jobOf(sys, token, next)).status === "complete", 15_000);
  });

  it("leaves queued jobs queued, no attempt spent, when BullMQ cannot take the attempts", async () => {
    const { server, client } = await smallRedis("64mb");
    const sys = await startSystem({
      env: {
        REDIS_URL: server.url,
        LOCK_MS: "600",
        STALLED_INTERVAL_MS: "100",
        WORKER_CONCURRENCY: "4",
        JOB_ATTEMPTS: "3",
      },
    });
    cleanups.push(() => sys.close());
    await setSimDown(sys, true, client);
    const token = await sys.token("alice");
    const ids: string[] = [];
    for (let i = 0; i < 3; i++)
      ids.push(await queueJob(sys, token, { ...FLUX_SCHNELL_512, prompt: `p${i}` }));
    const release = await holdFull(client);
    // The backend is back: the scheduler's dispatch still starts attempts at the limit (it deletes
    // first), but BullMQ's writes are refused. More than three attempts' leases (JOB_ATTEMPTS) pass.
    sys.sim.setConfig({ down: false });
    await new Promise((r) => setTimeout(r, 4_000));
    for (const id of ids) expect((await jobOf(sys, token, id)).status).toBe("queued");
    await release();
    for (const id of ids) {
      const done = await waitFor(async () => {
        const j = await jobOf(sys, token, id);
        return j.status !== "queued" && j.status !== "running" && j;
      }, 20_000);
      expect(done).toMatchObject({ status: "complete", attempts: 1 });
    }
  });
});

describe("Redis memory at start", () => {
  it("warns once when Redis has no maxmemory, and not when it has one", async () => {
    const lines: string[] = [];
    const logger = pino({ level: "warn" }, { write: (l: string) => lines.push(l) });
    const unbounded = await smallRedis(undefined);
    expect((await warnIfUnbounded(unbounded.client, logger, "external")).maxBytes).toBe(0);
    expect(lines).toHaveLength(1);
    expect(JSON.parse(lines[0]!)).toMatchObject({ level: 40, redis: "external", maxmemory: 0 });
    expect(lines[0]).toContain("no maxmemory");
    const bounded = await smallRedis("32mb");
    expect((await warnIfUnbounded(bounded.client, logger, "external")).maxBytes).toBe(32 * MIB);
    expect(lines).toHaveLength(1);
  });

  it("gives the embedded server its maxmemory, and keeps its files from other users", async () => {
    const dataDir = mkdtempSync(join(tmpdir(), "rg-emb-"));
    // A data dir of an older version: its folders open to everyone.
    mkdirSync(join(dataDir, "redis"), { mode: 0o755 });
    cleanups.push(() => rmSync(dataDir, { recursive: true, force: true }));
    const embedded: EmbeddedRedis = await startEmbeddedRedis({
      dataDir,
      confPath: resolve("redis.conf"),
      maxmemoryBytes: 48 * MIB,
    });
    cleanups.push(() => embedded.stop());
    const client = new Redis(embedded.url, { maxRetriesPerRequest: 1 });
    cleanups.push(() => client.disconnect());
    expect(await client.config("GET", "maxmemory")).toEqual(["maxmemory", String(48 * MIB)]);
    await client.set("k", "v");
    await waitFor(async () => existsSync(join(dataDir, "redis", "redis.log")));

    const entries = (dir: string): string[] =>
      readdirSync(dir).flatMap((n) => {
        const p = join(dir, n);
        return statSync(p).isDirectory() ? [p, ...entries(p)] : [p];
      });
    const all = [join(dataDir, "redis"), join(dataDir, "run"), ...entries(dataDir)];
    expect(all.some((p) => /appendonly\.aof/.test(p))).toBe(true);
    const open = all.filter((p) => (statSync(p).mode & 0o077) !== 0);
    expect(open).toEqual([]);
    // The umask was put back at once: this process creates files as before.
    const umask = process.umask(0o022);
    process.umask(umask);
    expect(umask).not.toBe(0o077);
  });
});
