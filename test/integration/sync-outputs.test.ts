// Sync outputs held in Redis until their CAS object is written (docs/decisions.md "Sync route"),
// against a real redis-server and a filesystem CAS: finish.lua keeps the bytes only when it completes
// the job, reads fall back to the verified copy, and the writer and its sweep write objects out and
// drop the copies.
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import pino from "pino";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { BlobCorruptError } from "../../src/core/ports.js";
import { createFsBlobStore, type FsBlobStore } from "../../src/infra/fs-blob-store.js";
import { createKeys } from "../../src/queues/keys.js";
import { createScheduler, type Scheduler } from "../../src/queues/scheduler.js";
import { casDigestOf, createSyncOutputs, withSyncOutputs } from "../../src/queues/sync-outputs.js";
import { createSyncOutputWriter } from "../../src/workers/sync-output-writer.js";
import { testRedis, type TestRedis } from "../helpers/redis.js";
import { admitTo, limitedPools } from "../helpers/pool-limits.js";
import { createJobStore } from "../../src/queues/job-store.js";

let r: TestRedis;
let sched: Scheduler;
let dir: string;
let cas: FsBlobStore;
let now = 1_000_000;
const logger = pino({ level: "silent" });
const bytes = Buffer.concat([Buffer.from([0x89]), Buffer.from("PNG the output of a sync job")]);
const digest = casDigestOf(bytes);

async function running(id: string) {
  const res = await sched.admit({
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
      mode: "sync",
    },
    request: JSON.stringify({ prompt: "a cat" }),
    serviceMs: 1000,
    capacity: 1,
  });
  if (!res.admitted) throw new Error(res.reason);
  const [a] = await sched.dispatch(1, [{ id: "b1", cap: 1, engine: "nunchaku", models: ["*"], ok: true }]);
  return a!;
}
const complete = { output: digest, outputs: [digest], ctype: "image/png", seed: 1, gpu_ms: 5 };

beforeEach(() => {
  r = testRedis();
  now = 1_000_000;
  sched = createScheduler({
    redis: r.client,
    prefix: r.prefix,
    clock: () => now,
    leaseTtlMs: 5_000,
    maxAttempts: 3,
    retentionS: 3600,
    retentionCount: 1000,
  });
  dir = mkdtempSync(join(tmpdir(), "rg-sync-outputs-"));
  cas = createFsBlobStore({ root: join(dir, "cas") });
});

afterEach(async () => {
  await r.cleanup();
  rmSync(dir, { recursive: true, force: true });
});

describe("sync outputs held in Redis", () => {
  it("are kept by the settle that completes the job, in the same step, and read as the object", async () => {
    const a = await running("j_kept");
    const keys = createKeys(r.prefix);
    expect(await sched.finish(a.id, a.token, "b1", "complete", complete, undefined, bytes)).toMatchObject({
      ok: true,
      status: "complete",
    });
    expect(await r.client.getBuffer(keys.syncOutput(digest))).toEqual(Buffer.from(bytes));
    expect(await r.client.zscore(keys.syncOutputs, digest)).toBe(String(now));

    const held = createSyncOutputs(r.client, ["{other-pool}", r.prefix]);
    const blobs = withSyncOutputs(cas, held);
    expect(await cas.has(digest)).toBe(false);
    expect(await blobs.has(digest)).toBe(true);
    expect(Buffer.from((await blobs.get(digest))!)).toEqual(bytes);
    const part = await blobs.open(digest, { start: 1, end: 3 });
    expect(part?.size).toBe(bytes.byteLength);
    expect(Buffer.from(await new Response(part!.body).arrayBuffer()).toString()).toBe("PNG");
  });

  it("are kept by a settle through the deployment-wide limits of pools too", async () => {
    // The limits' wrapper (queues/limited-scheduler.ts) once passed the settle on without the bytes:
    // with POOLS_FILE, a sync output then lived only in the worker's memory until its CAS write.
    const { pools } = limitedPools({
      redis: r.client,
      prefix: r.prefix,
      names: [],
      clock: () => now,
      graceMs: 30_000,
    });
    const pool = pools[0]!;
    expect((await admitTo(pool, "c1")).admitted).toBe(true);
    const [a] = await pool.sched.dispatch(1, pool.backends);
    expect(
      await pool.sched.finish(a!.id, a!.token, a!.backend, "complete", complete, undefined, bytes),
    ).toMatchObject({
      ok: true,
      status: "complete",
    });
    expect(await r.client.getBuffer(createKeys(pool.prefix).syncOutput(digest))).toEqual(Buffer.from(bytes));
  });

  it("come with the job's record in the settle's answer when asked (the sync caller needs no read)", async () => {
    const a = await running("j_record");
    const settled = await sched.finish(a.id, a.token, "b1", "complete", complete, undefined, bytes, true);
    const read = await createJobStore(r.client, r.prefix).read("j_record");
    expect(settled).toMatchObject({ ok: true, status: "complete" });
    expect(settled.ok && settled.job).toEqual(read!.job);
    expect(read!.job).toMatchObject({ status: "complete", output: digest, seed: 1, gpuMs: 5 });
    // not asked: no record
    const b = await running("j_norecord");
    const plain = await sched.finish(b.id, b.token, "b1", "complete", complete, undefined, bytes);
    expect(plain.ok && plain.job).toBeUndefined();
  });

  it("are not kept by a settle that is refused (stale token, cancelled job)", async () => {
    const keys = createKeys(r.prefix);
    const a = await running("j_cancelled");
    await sched.cancel(a.id, undefined);
    expect(await sched.finish(a.id, a.token, "b1", "complete", complete, undefined, bytes)).toMatchObject({
      ok: false,
      reason: "cancelled",
    });
    const b = await running("j_stale");
    expect(
      await sched.finish(b.id, `${b.token}x`, "b1", "complete", complete, undefined, bytes),
    ).toMatchObject({ ok: false, reason: "stale" });
    expect(await r.client.exists(keys.syncOutput(digest))).toBe(0);
    expect(await r.client.zcard(keys.syncOutputs)).toBe(0);
  });

  it("are found by a read that races their write-out (CAS looked at before the write, Redis after the drop)", async () => {
    const keys = createKeys(r.prefix);
    const held = createSyncOutputs(r.client, [r.prefix]);
    await r.client.multi().set(keys.syncOutput(digest), bytes).zadd(keys.syncOutputs, now, digest).exec();
    // The real store, whose first look at each object lets the writer finish in between: the object
    // is written and the copy dropped after the reader found no object, before it asks Redis.
    let writtenOut = false;
    const racing: typeof cas = {
      ...cas,
      async get(d) {
        const found = await cas.get(d);
        if (!writtenOut) {
          writtenOut = true;
          await cas.put(bytes);
          await held.drop(d);
        }
        return found;
      },
    };
    const got = await withSyncOutputs(racing, held).get(digest);
    expect(writtenOut).toBe(true);
    expect(got && Buffer.from(got)).toEqual(bytes);
  });

  it("are refused when the copy does not hash to its digest", async () => {
    const keys = createKeys(r.prefix);
    await r.client.set(keys.syncOutput(digest), "other bytes");
    const blobs = withSyncOutputs(cas, createSyncOutputs(r.client, [r.prefix]));
    await expect(blobs.get(digest)).rejects.toBeInstanceOf(BlobCorruptError);
  });

  it("are written out and dropped by their worker, and leftovers by the sweep once old enough", async () => {
    const keys = createKeys(r.prefix);
    const held = createSyncOutputs(r.client, [r.prefix]);
    const writer = createSyncOutputWriter({ blobs: cas, held, clock: () => now, logger, sweepMs: 50 });
    const a = await running("j_written");
    await sched.finish(a.id, a.token, "b1", "complete", complete, undefined, bytes);
    writer.writeOut(digest, bytes);
    await writer.close(5_000);
    expect(Buffer.from((await cas.get(digest))!)).toEqual(bytes);
    expect(await r.client.exists(keys.syncOutput(digest))).toBe(0);
    expect(await r.client.zcard(keys.syncOutputs)).toBe(0);

    // A copy its worker never wrote (it died): the sweep takes it once older than the sweep age.
    const other = new TextEncoder().encode("left behind by a dead worker");
    const otherDigest = casDigestOf(other);
    await r.client
      .multi()
      .set(keys.syncOutput(otherDigest), Buffer.from(other))
      .zadd(keys.syncOutputs, now, otherDigest)
      .exec();
    now += 49; // not old enough yet: left to its worker
    expect(await writer.sweep()).toBe(0);
    expect(await cas.has(otherDigest)).toBe(false);
    now += 2;
    expect(await writer.sweep()).toBe(1);
    expect(Buffer.from((await cas.get(otherDigest))!)).toEqual(Buffer.from(other));
    expect(await r.client.exists(keys.syncOutput(otherDigest))).toBe(0);
    expect(await r.client.zcard(keys.syncOutputs)).toBe(0);
  });
});
