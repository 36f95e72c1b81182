// The CAS garbage collector against a real redis-server and the filesystem CAS: inputs are kept only
// for jobs that exist, outputs until their job's retention ends, nothing referenced or recently
// written is ever removed, one pass runs at a time, and a put racing a sweep never loses its object.
import { randomBytes } from "node:crypto";
import { existsSync, mkdtempSync, rmSync, utimesSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import type { Clock } from "../../src/core/time.js";
import { createFsBlobStore, type FsBlobStore } from "../../src/infra/fs-blob-store.js";
import { createCasCollector, type CasCollectorOptions } from "../../src/queues/cas-collector.js";
import { createCasRefs } from "../../src/queues/cas-refs.js";
import { createScheduler } from "../../src/queues/scheduler.js";
import { testRedis, type TestRedis } from "../helpers/redis.js";
import { FLUX_SCHNELL_512, queueJob, startSystem, waitFor, type TestSystem } from "../helpers/system.js";
import { inlinePng } from "../helpers/images.js";
import { createKeys } from "../../src/queues/keys.js";

const HOUR = 3_600_000;
const GRACE_MS = 1_000;

function objectPath(root: string, digest: string): string {
  const hex = digest.slice("sha256-".length);
  return join(root, "sha256", hex.slice(0, 2), hex);
}

/** Sets an object's modification time `ms` into the past (as if written then). */
function age(root: string, digest: string, ms: number): void {
  const t = (Date.now() - ms) / 1000;
  utimesSync(objectPath(root, digest), t, t);
}

/** A collector over `store` whose clock runs `offsetMs` ahead of the real one. */
function collectorAt(
  redis: TestRedis,
  store: FsBlobStore,
  offsetMs: number,
  more: Partial<CasCollectorOptions> = {},
) {
  const clock: Clock = () => Date.now() + offsetMs;
  return createCasCollector({
    redis: redis.client,
    prefix: redis.prefix,
    sweeper: store,
    clock,
    graceMs: GRACE_MS,
    keepAfterMs: 0,
    batch: 1000,
    ...more,
  });
}

describe("the CAS collector", () => {
  let r: TestRedis;
  let root: string;
  let store: FsBlobStore;
  beforeEach(() => {
    r = testRedis();
    root = mkdtempSync(join(tmpdir(), "rg-gc-"));
    store = createFsBlobStore({ root, refreshAfterMs: GRACE_MS / 2 });
  });
  afterEach(async () => {
    await r.cleanup();
    rmSync(root, { recursive: true, force: true });
  });

  it("removes an object nothing references once it is older than the grace, never before", async () => {
    const digest = await store.put(randomBytes(64));
    const early = await collectorAt(r, store, 0).runPass();
    expect(early).toMatchObject({ ran: true, examined: 1, removed: [] });
    age(root, digest, 2 * GRACE_MS);
    const late = await collectorAt(r, store, 0).runPass();
    expect(late).toMatchObject({ ran: true, examined: 1, removed: [digest], walkDone: true });
    expect(existsSync(objectPath(root, digest))).toBe(false);
  });

  it("never removes an object a queued job references, and removes it after the job's retention", async () => {
    const sched = createScheduler({
      redis: r.client,
      prefix: r.prefix,
      clock: Date.now,
      leaseTtlMs: 5_000,
      maxAttempts: 1,
      retentionS: 60,
      retentionCount: 100,
    });
    const digest = await store.put(randomBytes(64));
    await sched.admit({
      id: "j_holds",
      route: "flux/schnell",
      priority: "low",
      fields: { cust: "c1" },
      request: "{}",
      serviceMs: 1,
      capacity: 1,
      inputs: [digest],
    });
    // A year on, the job still queued: kept.
    expect((await collectorAt(r, store, 365 * 24 * HOUR).runPass()).removed).toEqual([]);
    expect(await store.has(digest)).toBe(true);
    expect(await sched.cancel("j_holds", "c1")).toBe("was_queued");
    // Pinned for the job's retention (60 s), then collected.
    expect((await collectorAt(r, store, 30_000).runPass()).removed).toEqual([]);
    expect((await collectorAt(r, store, 61_000).runPass()).removed).toEqual([digest]);
  });

  it("keeps an object for the CAS retention after its pin ends", async () => {
    const digest = await store.put(randomBytes(64));
    // The pin API the ledger and audit log will use.
    await createCasRefs(r.client, r.prefix).pin([digest], Date.now() + 10_000);
    const keep = { keepAfterMs: 60_000 };
    expect((await collectorAt(r, store, 65_000, keep).runPass()).removed).toEqual([]);
    expect((await collectorAt(r, store, 71_000, keep).runPass()).removed).toEqual([digest]);
  });

  it("runs one pass at a time across processes", async () => {
    const digest = await store.put(randomBytes(64));
    age(root, digest, 2 * GRACE_MS);
    await r.client.set(createKeys(r.prefix).casGcLock, "another-process", "PX", 60_000);
    expect(await collectorAt(r, store, 0).runPass()).toEqual({
      ran: false,
      examined: 0,
      removed: [],
      walkDone: false,
    });
    expect(await store.has(digest)).toBe(true);
    await r.client.del(createKeys(r.prefix).casGcLock);
    expect((await collectorAt(r, store, 0).runPass()).removed).toEqual([digest]);
    // A pass releases the lock it took.
    expect(await r.client.exists(createKeys(r.prefix).casGcLock)).toBe(0);
  });

  it("does bounded work per pass and walks the whole store over several", async () => {
    const digests = await Promise.all(Array.from({ length: 10 }, () => store.put(randomBytes(32))));
    for (const d of digests) age(root, d, 2 * GRACE_MS);
    const collector = collectorAt(r, store, 0, { batch: 3 });
    const passes = [];
    for (let i = 0; i < 10; i++) {
      const pass = await collector.runPass();
      passes.push(pass);
      if (pass.walkDone) break;
    }
    expect(passes.every((p) => p.examined <= 3)).toBe(true);
    expect(passes.at(-1)?.walkDone).toBe(true);
    expect(passes.flatMap((p) => p.removed).sort()).toEqual([...digests].sort());
  });

  it("never loses an object put while a sweep is deciding about it", async () => {
    // Many old, unreferenced objects; while passes sweep them, the same bytes are put again. Every
    // put that resolved must leave its object stored: refreshed before the collector set it aside,
    // or written anew after.
    // A grace far longer than the puts take even on a loaded machine: with 1 s, the first puts' fresh
    // objects were older than the grace by the time a sweep reached them under load average 10 (and
    // rightly removed), which is not the race this test is about.
    const graceMs = 30_000;
    const blobs = Array.from({ length: 300 }, () => randomBytes(32));
    const digests = await Promise.all(blobs.map((b) => store.put(b)));
    for (const d of digests) age(root, d, 2 * graceMs);
    const collector = collectorAt(r, store, 0, { batch: 50, graceMs });
    let examined = 0;
    const sweeping = (async () => {
      for (let i = 0; i < 12; i++) examined += (await collector.runPass()).examined;
    })();
    const writer = createFsBlobStore({ root, refreshAfterMs: graceMs / 2 });
    for (const b of blobs) {
      await writer.put(b);
      await new Promise((res) => setImmediate(res));
    }
    await sweeping;
    expect(examined).toBeGreaterThanOrEqual(digests.length); // the sweeps looked at every object
    const missing = [];
    for (const d of digests) if (!(await store.has(d))) missing.push(d);
    expect(missing).toEqual([]);
  });
});

describe("inputs and outputs of jobs, through the API", () => {
  let sys: TestSystem;
  let token: string;
  const cas = () => join(sys.dataDir, "cas");
  const storeOf = () => createFsBlobStore({ root: cas() });
  afterEach(async () => {
    await sys?.close();
  });

  it("removes the inline image of a cancelled job after its retention, never before", async () => {
    sys = await startSystem({
      worker: false,
      env: { JOB_RETENTION_S: "60", CAS_RETENTION_S: "0", CAS_GC_GRACE_S: "1" },
    });
    token = await sys.token("alice");
    const image = await inlinePng("#c0ffee");
    const id = await queueJob(sys, token, {
      ...FLUX_SCHNELL_512,
      task: "i2i",
      prompt: "p",
      image: image.data,
    });
    expect(existsSync(objectPath(cas(), image.digest))).toBe(true);
    // Queued: kept, however late the collector looks.
    expect((await collectorAt(sys.redis, storeOf(), 365 * 24 * HOUR).runPass()).removed).toEqual([]);
    expect((await sys.call(`/jobs/${id}`, { method: "DELETE", token })).status).toBe(204);
    expect((await collectorAt(sys.redis, storeOf(), 30_000).runPass()).removed).toEqual([]);
    expect((await collectorAt(sys.redis, storeOf(), 61_000).runPass()).removed).toEqual([image.digest]);
    expect(existsSync(objectPath(cas(), image.digest))).toBe(false);
  });

  it("keeps a complete job's output until its retention ends, then removes it", async () => {
    sys = await startSystem({
      env: { JOB_RETENTION_S: "120", CAS_RETENTION_S: "0", CAS_GC_GRACE_S: "1" },
    });
    token = await sys.token("alice");
    const id = await queueJob(sys, token, { ...FLUX_SCHNELL_512, prompt: "a fox" });
    const output = await waitFor(async () => {
      const res = await sys.call(`/jobs/${id}?redirect=false`, { token });
      const job = (await res.json()) as { status: string; output?: string };
      return job.status === "complete" && job.output;
    });
    const digest = /objects\/(sha256-[0-9a-f]{64})/.exec(output)?.[1];
    expect(digest).toBeDefined();
    expect((await collectorAt(sys.redis, storeOf(), 100_000).runPass()).removed).toEqual([]);
    const served = await fetch(output);
    expect(served.status).toBe(200);
    await served.arrayBuffer(); // an unread body would hold its connection open
    expect((await collectorAt(sys.redis, storeOf(), 121_000).runPass()).removed).toEqual([digest]);
  });

  it("runs in the roles: the inline image of a cancelled job goes once its pin and the grace are over", async () => {
    sys = await startSystem({
      worker: false,
      env: {
        JOB_RETENTION_S: "1",
        CAS_RETENTION_S: "0",
        CAS_GC_GRACE_S: "1",
        CAS_GC_INTERVAL_MS: "100",
      },
    });
    token = await sys.token("alice");
    const image = await inlinePng("#facade");
    const id = await queueJob(sys, token, {
      ...FLUX_SCHNELL_512,
      task: "i2i",
      prompt: "p",
      image: image.data,
    });
    expect((await sys.call(`/jobs/${id}`, { method: "DELETE", token })).status).toBe(204);
    await waitFor(async () => !existsSync(objectPath(cas(), image.digest)));
  });
});
