// The admin board's reads of the scheduler (src/queues/board-reads.ts) against the real scripts on a
// real Redis, on a fake clock: every view pages by rank or by group (tenants' held sets, backends'
// leases), positions are those of the job store's read, a retry's backoff shows as such, and no page
// reads more than BOARD_PAGE_MAX jobs.
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { createBoardReads, BOARD_PAGE_MAX, type BoardReads } from "../../src/queues/board-reads.js";
import { createJobStore, type JobStore } from "../../src/queues/job-store.js";
import { createScheduler, type BackendView, type Scheduler } from "../../src/queues/scheduler.js";
import type { Priority } from "../../src/core/job.js";
import { testRedis, type TestRedis } from "../helpers/redis.js";

let r: TestRedis;
let sched: Scheduler;
let store: JobStore;
let reads: BoardReads;
let now = 1_000_000;
let seq = 0;

const view = (id: string, cap: number): BackendView => ({
  id,
  cap,
  engine: "nunchaku",
  models: ["*"],
  ok: true,
});

async function admit(cust: string, priority: Priority = "normal", maxRunning?: number): Promise<string> {
  const id = `j_${cust}${String(++seq).padStart(20, "0")}`;
  const res = await sched.admit({
    id,
    route: "flux/schnell",
    priority,
    fields: {
      cust,
      mod: "image",
      fam: "flux",
      mdl: "schnell",
      task: "t2i",
      fmt: "512",
      seed: "1",
      mode: "async",
    },
    request: JSON.stringify({ prompt: "kept in Redis, redacted on the board" }),
    serviceMs: 1000,
    capacity: 3,
    costMs: 1000,
    tenant: { weight: 1, ...(maxRunning === undefined ? {} : { maxRunning }) },
  });
  if (!res.admitted) throw new Error(`${id}: ${res.reason}`);
  return id;
}

beforeEach(() => {
  r = testRedis();
  now = 1_000_000;
  sched = createScheduler({
    redis: r.client,
    prefix: r.prefix,
    clock: () => now,
    leaseTtlMs: 3_600_000,
    maxAttempts: 3,
    retentionS: 3600,
    retentionCount: 1000,
  });
  store = createJobStore(r.client, r.prefix);
  reads = createBoardReads(r.client, r.prefix, store);
});

afterEach(async () => {
  await r.cleanup();
});

const ids = (jobs: { job: { id: string } }[]) => jobs.map((b) => b.job.id);

describe("board reads of the scheduler", () => {
  it("pages every view: order, held by tenant, leases by backend, backoff, finished", async () => {
    // tenants a and c may run one job at a time; b has no limit
    const first = [await admit("a", "normal", 1), await admit("c", "normal", 1)];
    const started = await sched.dispatch(2, [view("gpu-b", 2), view("gpu-a", 1)]);
    expect(started.map((s) => s.id).sort()).toEqual([...first].sort());
    // a's and c's next jobs come first in the order and are held at their limit; b's start
    await admit("a", "normal", 1);
    await admit("a", "high", 1);
    await admit("c", "normal", 1);
    const b = [await admit("b", "low"), await admit("b", "low"), await admit("b", "low")];
    started.push(...(await sched.dispatch(1, [view("gpu-b", 2), view("gpu-a", 1)])));
    expect(started.map((s) => s.id)).toContain(b[0]);
    const counts = await reads.counts();
    expect(counts).toEqual({ queued: 5, held: 3, backoff: 0, running: 3, completed: 0, failed: 0 });

    // running: by backend (sorted), then by lease; pages cross the backends
    const running = await reads.page("running", 0, 9);
    expect(new Set(ids(running))).toEqual(new Set(started.map((s) => s.id)));
    expect(running.map((j) => j.job.backend)).toEqual(["gpu-a", "gpu-b", "gpu-b"]);
    expect(ids(await reads.page("running", 1, 2))).toEqual(ids(running).slice(1, 3));
    for (const j of running) expect(j.job).toMatchObject({ status: "running", attempts: 1 });

    // queued: the order by rank, each at the position the job store's read gives
    const queued = await reads.page("queued", 0, 99);
    expect(queued).toHaveLength(counts.queued);
    for (const [i, j] of queued.entries()) {
      expect(j.position).toBe(i);
      expect((await store.read(j.job.id))!.position).toBe(i);
    }
    expect(ids(await reads.page("queued", 2, 3))).toEqual(ids(queued).slice(2, 4));

    // held: tenant by tenant, each in its order; the same jobs say held in the order
    const held = await reads.page("held", 0, 9);
    expect(held.length).toBe(counts.held);
    expect(held.every((j) => j.held && j.job.status === "queued")).toBe(true);
    expect(held.map((j) => j.job.customerId)).toEqual([...held.map((j) => j.job.customerId)].sort());
    expect(
      queued
        .filter((j) => j.held)
        .map((j) => j.job.id)
        .sort(),
    ).toEqual(ids(held).sort());
    expect(ids(await reads.page("held", 1, 1))).toEqual([held[1]!.job.id]);

    // a retriable failure goes back to its place in the order and waits for its backoff
    const attempt = started.find((s) => s.id === b[0])!;
    await sched.finish(attempt.id, attempt.token, attempt.backend, "retry", {
      error: { code: "backend_error", message: "backend answered 500", retriable: true },
      notbefore: now + 60_000,
    });
    const later = await reads.page("backoff", 0, 9);
    expect(ids(later)).toEqual([attempt.id]);
    expect(later[0]!.notBefore).toBe(now + 60_000);
    const inOrder = (await reads.page("queued", 0, 99)).find((j) => j.job.id === attempt.id)!;
    expect(inOrder.notBefore).toBe(now + 60_000);
    expect(inOrder.position).toBe((await store.read(attempt.id))!.position);

    // finished: newest first, split by how they ended
    const done = started.find((s) => s.id !== attempt.id)!;
    now += 10;
    await sched.finish(done.id, done.token, done.backend, "complete", {
      output: "sha256-x",
      outputs: ["sha256-x"],
      ctype: "image/png",
      seed: 1,
      gpu_ms: 5,
    });
    now += 10;
    const gone = b[2]!;
    expect(await sched.cancel(gone, undefined)).toBe("was_queued");
    expect(await reads.counts()).toMatchObject({ completed: 1, failed: 1, backoff: 1 });
    expect(ids(await reads.page("completed", 0, 9))).toEqual([done.id]);
    const failed = await reads.page("failed", 0, 9);
    expect(ids(failed)).toEqual([gone]);
    expect(failed[0]!.job.error?.code).toBe("cancelled");
    expect(await reads.job(gone)).toMatchObject({ position: -1, held: false });
    expect(await reads.job("j_none00000000000000000000")).toBeUndefined();
  });

  it("never reads more than BOARD_PAGE_MAX jobs, whatever the range", async () => {
    for (let i = 0; i < BOARD_PAGE_MAX + 5; i++) await admit(`t${i % 7}`);
    expect(await reads.page("queued", 0, 1_000_000)).toHaveLength(BOARD_PAGE_MAX);
    expect(await reads.page("queued", -10, 4)).toHaveLength(5);
    const tail = await reads.page("queued", BOARD_PAGE_MAX, 1e15);
    expect(tail.map((j) => j.position)).toEqual([100, 101, 102, 103, 104]);
    expect(await reads.page("queued", 5, 2)).toEqual([]);
  });
});
