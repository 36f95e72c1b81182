// The parts of a worker process, each on its own against a real redis-server and the real scheduler:
// the lease keeper (renewal of handed and running attempts, the cancel relay, doomed attempts), the
// attempt queue (hand-offs to BullMQ, hand-backs at stop and when Redis refuses) and the dispatcher
// (slots reserved per pass, one pass at a time, none while refused or stopping).
import { attemptId } from "../../src/core/attempt-id.js";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Queue } from "bullmq";
import { Redis } from "ioredis";
import { pino } from "pino";
import { afterEach, describe, expect, it } from "vitest";
import { createJobStore, type JobStore } from "../../src/queues/job-store.js";
import { RENDER_QUEUE } from "../../src/queues/keys.js";
import {
  createScheduler,
  type Attempt,
  type BackendView,
  type Scheduler,
} from "../../src/queues/scheduler.js";
import { createAttemptQueue, HAND_RETRY_MS } from "../../src/workers/attempt-queue.js";
import { createDispatcher } from "../../src/workers/dispatcher.js";
import type { AbortReason } from "../../src/workers/failure-policy.js";
import { createLeaseKeeper } from "../../src/workers/lease-keeper.js";
import { createSlotLedger, type SlotLedger } from "../../src/workers/slot-ledger.js";
import { spawnRedis } from "../helpers/processes.js";
import { redisUrl, testRedis, type TestRedis } from "../helpers/redis.js";

const LEASE_TTL_MS = 5_000;
const logger = pino({ level: "silent" });
const b1: BackendView = { id: "b1", cap: 10, engine: "nunchaku", models: ["*"], ok: true };

const cleanups: (() => Promise<unknown> | void)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

/** A scheduler on `client` under `prefix` with a clock the test moves. */
function schedulerOn(client: Redis, prefix: string) {
  const time = { now: 1_000_000 };
  const clock = () => time.now;
  const sched = createScheduler({
    redis: client,
    prefix,
    clock,
    leaseTtlMs: LEASE_TTL_MS,
    maxAttempts: 3,
    retentionS: 3600,
    retentionCount: 1000,
  });
  const store = createJobStore(client, prefix);
  return { sched, store, time, clock };
}

function setup() {
  const r: TestRedis = testRedis();
  cleanups.push(() => r.cleanup());
  return { r, ...schedulerOn(r.client, r.prefix) };
}

async function admit(sched: Scheduler, id: string, mode: "async" | "sync" = "async"): Promise<void> {
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
      fmt: "1024",
      seed: "7",
      mode,
    },
    request: JSON.stringify({ prompt: "a cat" }),
    serviceMs: 1000,
    capacity: 2,
  });
  if (!res.admitted) throw new Error(`not admitted: ${res.reason}`);
}

/** Holds `a` as the processor does while it runs; records why it was aborted. */
function hold(ledger: SlotLedger, a: Pick<Attempt, "id" | "token" | "backend">): AbortReason[] {
  const aborted: AbortReason[] = [];
  ledger.held.set(a.id, { token: a.token, backend: a.backend, abort: (r) => aborted.push(r) });
  return aborted;
}

const status = async (store: JobStore, id: string) => (await store.read(id))?.job;

describe("lease keeper", () => {
  it("renews the lease of an attempt handed to BullMQ for one lock period, then lets it run out", async () => {
    const { sched, store, time, clock } = setup();
    const ledger = createSlotLedger({ concurrency: 2, clock });
    const leases = createLeaseKeeper({ scheduler: sched, ledger, clock, logger, lockMs: 3_000 });
    await admit(sched, "j");
    const [a] = await sched.dispatch(1, [b1]);
    const start = time.now;
    ledger.hand([a!]);

    time.now = start + 2_000;
    await leases.renew(); // the lease now ends 7 s after the start instead of 5 s
    time.now = start + 6_000;
    expect(await sched.reap()).toBe(0);
    // No processor began it within the lock period: it may have gone to a process that died.
    await leases.renew();
    expect([...ledger.waiting()]).toEqual([]);
    time.now = start + 7_000;
    expect(await sched.reap()).toBe(1);
    expect((await status(store, "j"))?.status).toBe("queued");
  });

  it("aborts an attempt running here once its job moved on, and never begins it again; the job's next attempt may run", async () => {
    const { sched, time, clock } = setup();
    const ledger = createSlotLedger({ concurrency: 2, clock });
    const leases = createLeaseKeeper({ scheduler: sched, ledger, clock, logger, lockMs: 3_000 });
    await admit(sched, "j");
    await admit(sched, "k");
    const [a] = await sched.dispatch(1, [b1]);
    const abortedA = hold(ledger, a!);
    // This process stalled past the lease: the job was reaped and started again, elsewhere.
    time.now += LEASE_TTL_MS + 1;
    expect(await sched.reap()).toBe(1);
    const [again, k] = await sched.dispatch(2, [b1]);
    expect(again!.id).toBe("j");
    const abortedK = hold(ledger, k!);

    await leases.renew();
    expect(abortedA).toEqual(["cancelled"]);
    expect(abortedK).toEqual([]);
    expect(leases.isDoomed(a!)).toBe(true);
    expect(leases.isDoomed(again!)).toBe(false);
    expect(leases.isDoomed(k!)).toBe(false);
  });

  it("relays a cancel: the attempt running here aborts at once, and no attempt of the job begins here", () => {
    const { clock } = setup();
    const ledger = createSlotLedger({ concurrency: 2, clock });
    const leases = createLeaseKeeper({
      scheduler: { renew: async () => [] },
      ledger,
      clock,
      logger,
      lockMs: 3_000,
    });
    const aborted = hold(ledger, { id: "j", token: "t1", backend: "b1" });
    leases.cancelled("j");
    expect(aborted).toEqual(["cancelled"]);
    expect(leases.isDoomed({ id: "j", token: "t2" })).toBe(true);
    expect(leases.isDoomed({ id: "k", token: "t1" })).toBe(false);
  });

  it("forgets a doomed attempt after a minute", () => {
    const { time, clock } = setup();
    const ledger = createSlotLedger({ concurrency: 1, clock });
    const leases = createLeaseKeeper({
      scheduler: { renew: async () => [] },
      ledger,
      clock,
      logger,
      lockMs: 3_000,
    });
    leases.doom("j|t1");
    time.now += 60_000;
    leases.doom("k");
    expect(leases.isDoomed({ id: "j", token: "t1" })).toBe(true);
    time.now += 1;
    leases.doom("l");
    expect(leases.isDoomed({ id: "j", token: "t1" })).toBe(false);
    expect(leases.isDoomed({ id: "k", token: "t1" })).toBe(true);
  });
});

describe("attempt queue", () => {
  function attemptQueueOn(
    connection: Redis,
    prefix: string,
    sched: Scheduler,
    ledger: SlotLedger,
    clock: () => number,
  ) {
    const doomed: string[] = [];
    const attempts = createAttemptQueue({
      connection,
      prefix,
      scheduler: sched,
      ledger,
      leases: { doom: (key) => doomed.push(key) },
      clock,
      logger,
    });
    cleanups.push(async () => {
      await attempts.close();
      connection.disconnect();
    });
    return { attempts, doomed };
  }

  it("hands attempts to BullMQ under their attempt ids, and at stop hands back those no process began", async () => {
    const { r, sched, store, clock } = setup();
    const ledger = createSlotLedger({ concurrency: 2, clock });
    const { attempts } = attemptQueueOn(new Redis(redisUrl()), r.prefix, sched, ledger, clock);
    const bullConnection = new Redis(redisUrl());
    const bull = new Queue(RENDER_QUEUE, { connection: bullConnection, prefix: r.prefix });
    cleanups.push(async () => {
      await bull.close();
      bullConnection.disconnect();
    });
    await admit(sched, "j1");
    await admit(sched, "j2");
    const [a1, a2] = await sched.dispatch(2, [b1]);
    await attempts.hand([a1!, a2!]);
    expect((await bull.getJob(attemptId(a1!)))?.data).toEqual(a1);
    expect((await bull.getJob(attemptId(a2!)))?.data).toEqual(a2);

    // j1's attempt runs here; j2's is still waiting in BullMQ when the worker stops.
    ledger.begin(a1!.id);
    hold(ledger, a1!);
    await attempts.handBackWaiting();
    expect(await bull.getJob(attemptId(a2!))).toBeUndefined();
    expect(await bull.getJob(attemptId(a1!))).toBeDefined();
    // Handed back as a busy answer: queued at its place, no attempt spent.
    expect(await status(store, "j2")).toMatchObject({ status: "queued", attemptLog: [{ outcome: "busy" }] });
    expect(await status(store, "j1")).toMatchObject({ status: "running" });
    expect([...ledger.waiting()]).toEqual([]);
  });

  it("hands attempts back unbegun, no attempt spent, when Redis refuses them, and refuses for a while", async () => {
    const dir = mkdtempSync(join(tmpdir(), "rg-parts-redis-"));
    const server = await spawnRedis(dir, ["--maxmemory-policy", "noeviction"]);
    const client = new Redis(server.url, { maxRetriesPerRequest: 1 });
    cleanups.push(async () => {
      client.disconnect();
      await server.stop();
      rmSync(dir, { recursive: true, force: true });
    });
    const { sched, store, time, clock } = schedulerOn(client, "{parts}");
    const ledger = createSlotLedger({ concurrency: 2, clock });
    const connection = new Redis(server.url, { maxRetriesPerRequest: 1 });
    const { attempts, doomed } = attemptQueueOn(connection, "{parts}", sched, ledger, clock);
    await admit(sched, "j");
    const [a] = await sched.dispatch(1, [b1]);

    // Redis at its maxmemory: BullMQ's writes are refused, our scripts (which delete first) still run.
    for (let i = 0; i < 20; i++) await client.set(`junk:${i}`, "x".repeat(64 * 1024));
    await client.config("SET", "maxmemory", "1mb");
    await expect(attempts.hand([a!])).rejects.toThrow(/OOM/);

    expect(await status(store, "j")).toMatchObject({ status: "queued", attemptLog: [{ outcome: "busy" }] });
    expect(doomed).toEqual([`${a!.id}|${a!.token}`]);
    expect([...ledger.waiting()]).toEqual([]);
    expect(ledger.free()).toBe(2);
    expect(attempts.refusing()).toBe(true);
    time.now += HAND_RETRY_MS;
    expect(attempts.refusing()).toBe(false);
    // Memory back: the job starts again with no attempt spent.
    await client.config("SET", "maxmemory", "0");
    const [again] = await sched.dispatch(1, [b1]);
    expect(again).toMatchObject({ id: "j", spent: 0 });
  });
});

describe("dispatcher", () => {
  function dispatcherFor(
    sched: Scheduler,
    ledger: SlotLedger,
    o: {
      refusing?: () => boolean;
      stopping?: AbortSignal;
      hand?: (a: readonly Attempt[]) => Promise<void>;
      runHere?: (a: Attempt) => boolean;
    } = {},
  ) {
    const calls: number[] = [];
    const handed: string[] = [];
    const dispatcher = createDispatcher({
      scheduler: {
        // What the ledger has left free while the scheduler is called: the pass reserved it all.
        dispatch: (free, views, prefer) => {
          calls.push(ledger.free());
          return sched.dispatch(free, views, prefer);
        },
      },
      ledger,
      attempts: {
        hand: async (started) => {
          ledger.hand(started);
          handed.push(...started.map((a) => a.id));
          await o.hand?.(started);
        },
        refusing: o.refusing ?? (() => false),
      },
      views: () => [b1],
      prefer: {},
      stopping: o.stopping ?? new AbortController().signal,
      logger,
      ...(o.runHere ? { runHere: o.runHere } : {}),
    });
    return { dispatcher, calls, handed };
  }

  it("starts no more attempts than this process has free slots, and reserves them only while it asks", async () => {
    const { sched, store, time, clock } = setup();
    for (const id of ["j1", "j2", "j3", "j4"]) await admit(sched, id);
    const ledger = createSlotLedger({ concurrency: 3, clock });
    ledger.begin("elsewhere");
    const { dispatcher, calls, handed } = dispatcherFor(sched, ledger);
    dispatcher.kick();
    await dispatcher.inFlight();
    expect(handed).toEqual(["j1", "j2"]);
    expect(calls).toEqual([0]);
    expect((await store.totals()).running).toBe(2);
    // The two handed attempts count for a second; then the slots are free again (none stays reserved).
    expect(ledger.free()).toBe(0);
    time.now += 1_001;
    expect(ledger.free()).toBe(2);
  });

  it("runs a sync job's attempt here without BullMQ, in the slot reserved for it; the rest, and a sync attempt it cannot run, go to BullMQ", async () => {
    const { sched, store, clock } = setup();
    await admit(sched, "a1");
    await admit(sched, "s1", "sync");
    await admit(sched, "s2", "sync");
    const ledger = createSlotLedger({ concurrency: 3, clock });
    const here: Attempt[] = [];
    const { dispatcher, handed } = dispatcherFor(sched, ledger, {
      // The runner begins the slot at once (as runHere does); it cannot take a second one.
      runHere: (a) => {
        if (here.length > 0) return false;
        here.push(a);
        ledger.begin(a.id);
        return true;
      },
    });
    dispatcher.kick();
    await dispatcher.inFlight();
    expect(here.map((a) => ({ id: a.id, sync: a.sync }))).toEqual([{ id: "s1", sync: true }]);
    expect(handed).toEqual(["a1", "s2"]);
    // Running under its lease like any started attempt; its slot counts as taken.
    expect(await status(store, "s1")).toMatchObject({ status: "running" });
    expect(ledger.free()).toBe(0);
  });

  it("runs one more pass when kicked during a pass, and none while the attempt queue refuses or once stopping", async () => {
    const { sched, store, clock } = setup();
    await admit(sched, "j1");
    const ledger = createSlotLedger({ concurrency: 3, clock });
    let release = () => {};
    const handing = new Promise<void>((r) => (release = r));
    let refusing = false;
    const halt = new AbortController();
    const { dispatcher, calls, handed } = dispatcherFor(sched, ledger, {
      hand: () => handing,
      refusing: () => refusing,
      stopping: halt.signal,
    });
    dispatcher.kick();
    const first = dispatcher.inFlight();
    await expect.poll(() => handed).toEqual(["j1"]);
    // j2 arrives while the pass hands j1 over: the kick it causes waits for that pass, then runs.
    await admit(sched, "j2");
    dispatcher.kick();
    expect(dispatcher.inFlight()).toBe(first);
    release();
    await first;
    expect(handed).toEqual(["j1", "j2"]);
    expect(calls).toHaveLength(2);

    await admit(sched, "j3");
    refusing = true;
    dispatcher.kick();
    await dispatcher.inFlight();
    halt.abort();
    refusing = false;
    dispatcher.kick();
    expect(dispatcher.inFlight()).toBeUndefined();
    expect(calls).toHaveLength(2);
    expect(await status(store, "j3")).toMatchObject({ status: "queued" });
  });
});
