// The outbox → relay → `analytics` queue → ClickHouse path on a real Redis, real BullMQ queues and a
// real clickhouse-server: every finished job arrives as one row with the ledger's numbers, written in
// batches; an event handed over again is stored once; with ClickHouse gone the rows wait in the queue
// (the relay and billing go on), and once it is back they arrive, once each.
import { Queue } from "bullmq";
import { Redis } from "ioredis";
import { pino } from "pino";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { AnalyticsSink, InferenceEvent } from "../../src/core/analytics-event.js";
import { DEFAULT_TIERS } from "../../src/core/tiers.js";
import type { AnalyticsStore } from "../../src/infra/clickhouse-analytics.js";
import {
  ANALYTICS_ATTEMPTS,
  ANALYTICS_BACKOFF,
  startAnalyticsWorker,
  type AnalyticsWorker,
} from "../../src/pipeline/analytics.js";
import { createRelay, type Relay } from "../../src/pipeline/relay.js";
import { ANALYTICS_QUEUE, AUDIT_QUEUE, BILLING_QUEUE, WEBHOOKS_QUEUE } from "../../src/queues/keys.js";
import { createOutboxStore } from "../../src/queues/outbox-store.js";
import { createScheduler } from "../../src/queues/scheduler.js";
import type { BackendView } from "../../src/queues/scheduler-types.js";
import { startTestClickHouse, type TestClickHouse } from "../helpers/clickhouse.js";
import { until } from "../helpers/processes.js";
import { redisUrl, testRedis, type TestRedis } from "../helpers/redis.js";

const logger = pino({ level: "silent" });
const HOUR = 3_600_000;
/** The sum of BullMQ's job counts. */
const sum = (counts: Record<string, number>): number => Object.values(counts).reduce((a, b) => a + b, 0);
const BATCH = 16;

let r: TestRedis;
let ch: TestClickHouse;
let store: AnalyticsStore;
let now = Date.UTC(2026, 11, 6, 10, 0, 0);
const T0 = now;
const connections: Redis[] = [];
const conn = () => {
  const c = new Redis(redisUrl(), { maxRetriesPerRequest: null });
  connections.push(c);
  return c;
};
/** Sizes of the inserts the worker made, failed ones included. */
const inserts: { rows: number; ok: boolean }[] = [];

const scheduler = () =>
  createScheduler({
    redis: r.client,
    prefix: r.prefix,
    clock: () => now,
    leaseTtlMs: 600_000,
    maxAttempts: 1,
    retentionS: 3600,
    retentionCount: 100_000,
  });
let s: ReturnType<typeof scheduler>;
let analyticsQueue: Queue;
let billingQueue: Queue;
let webhooksQueue: Queue;
let auditQueue: Queue;
let worker: AnalyticsWorker;
const relays: Relay[] = [];
const outbox = () => createOutboxStore(conn(), r.prefix);

async function stopRelays(): Promise<void> {
  for (const x of relays.splice(0)) await x.stop();
}

function relay(consumer: string, claimIdleMs = 30_000): Relay {
  const x = createRelay({
    outbox: outbox(),
    queues: { billing: billingQueue, webhooks: webhooksQueue, audit: auditQueue },
    tiers: DEFAULT_TIERS,
    analytics: { queue: analyticsQueue, tiers: DEFAULT_TIERS },
    consumer,
    logger,
    claimIdleMs,
    blockMs: 100,
    housekeepingMs: 100,
  });
  relays.push(x);
  void x.run();
  return x;
}

const fields = (cust: string) => ({
  cust,
  tier: "pro",
  prio: "normal",
  mod: "image",
  fam: "flux",
  mdl: "schnell",
  task: "t2i",
  fmt: "1024",
  seed: "1",
  mode: "async",
});
const backends: BackendView[] = [{ id: "gpu", cap: 10_000, engine: "nunchaku", models: ["*"], ok: true }];

/** Admits `ids` and ends them by kind (complete with GPU time 100 + i, failed, cancelled queued). */
async function finishJobs(ids: readonly string[], customer: string): Promise<Map<string, number>> {
  const gpu = new Map<string, number>();
  for (const id of ids) {
    const res = await s.admit({
      id,
      route: "flux/schnell",
      priority: "normal",
      fields: fields(customer),
      request: JSON.stringify({ prompt: "secret prompt" }),
      serviceMs: 1000,
      capacity: 16,
      ttlAt: now + HOUR,
    });
    expect(res.admitted).toBe(true);
  }
  const cancelled = ids.filter((_, i) => i % 3 === 2);
  for (const id of cancelled) await s.cancel(id, customer);
  now += 1_000;
  const started = await s.dispatch(ids.length, backends);
  now += 50;
  for (const a of started) {
    const i = ids.indexOf(a.id);
    if (i % 3 === 0) {
      gpu.set(a.id, 100 + i);
      await s.finish(a.id, a.token, a.backend, "complete", {
        output: "sha256-" + "a".repeat(64),
        outputs: ["sha256-" + "a".repeat(64)],
        ctype: "image/png",
        gpu_ms: 100 + i,
      });
    } else {
      gpu.set(a.id, 0);
      await s.finish(a.id, a.token, a.backend, "failed", {
        error: { code: "backend_error", message: "boom", retriable: false },
        gpu_ms: 999,
      });
    }
  }
  for (const id of cancelled) gpu.set(id, 0);
  return gpu;
}

const ids = (tag: string, n: number) =>
  Array.from({ length: n }, (_, i) => `j_${tag}${String(i).padStart(22 - tag.length, "0")}`);
const window = { fromMs: T0 - HOUR, toMs: T0 + 2 * HOUR };

beforeAll(async () => {
  r = testRedis();
  ch = await startTestClickHouse();
  store = ch.store(ch.uniqueDatabase());
  await store.ensureSchema();
  s = scheduler();
  const queueOpts = { connection: conn(), prefix: r.prefix };
  billingQueue = new Queue(BILLING_QUEUE, queueOpts);
  webhooksQueue = new Queue(WEBHOOKS_QUEUE, queueOpts);
  auditQueue = new Queue(AUDIT_QUEUE, queueOpts);
  analyticsQueue = new Queue(ANALYTICS_QUEUE, {
    ...queueOpts,
    defaultJobOptions: { attempts: ANALYTICS_ATTEMPTS, backoff: { type: ANALYTICS_BACKOFF } },
  });
  const sink: AnalyticsSink = {
    async insert(rows: readonly InferenceEvent[]) {
      try {
        const stored = await store.insert(rows);
        inserts.push({ rows: rows.length, ok: true });
        return stored;
      } catch (err) {
        inserts.push({ rows: rows.length, ok: false });
        throw err;
      }
    },
    refreshRollup: (keys) => store.refreshRollup(keys),
    refreshHours: (span, opts) => store.refreshHours(span, opts),
  };
  worker = await startAnalyticsWorker({
    sink,
    connection: conn(),
    prefix: r.prefix,
    batch: BATCH,
    flushMs: 50,
    retryMaxMs: 300,
    lockMs: 5_000,
    logger,
  });
});
afterAll(async () => {
  await stopRelays();
  await worker?.close();
  await Promise.all([
    analyticsQueue?.close(),
    billingQueue?.close(),
    webhooksQueue?.close(),
    auditQueue?.close(),
  ]);
  for (const c of connections) c.disconnect();
  await ch?.stop();
  await r?.cleanup();
});

describe("analytics from the outbox", () => {
  it("stores one row per finished job, with the ledger's GPU time and price, in batches", async () => {
    const jobs = ids("an", 90);
    const gpu = await finishJobs(jobs, "acme");
    relay("relay-a");
    relay("relay-b");
    const rows = await until(
      "every job stored",
      async () => {
        const got = await store.jobsInWindow(window);
        return got.length >= jobs.length ? got : undefined;
      },
      30_000,
    );
    expect(rows.map((x) => x.job_id).sort()).toEqual([...jobs].sort());
    for (const x of rows) {
      expect(x.gpu_ms).toBe(gpu.get(x.job_id));
      expect(x.price_micro_usd).toBe(Math.floor((x.gpu_ms * 400 + 500) / 1000));
    }
    const statuses = rows.reduce<Record<string, number>>(
      (m, x) => ({ ...m, [x.status]: (m[x.status] ?? 0) + 1 }),
      {},
    );
    expect(statuses).toEqual({ complete: 30, error: 30, cancelled: 30 });
    // batched: no insert above ANALYTICS_BATCH, and fewer inserts than rows
    expect(Math.max(...inserts.map((i) => i.rows))).toBeLessThanOrEqual(BATCH);
    expect(inserts.length).toBeLessThan(jobs.length / 2);
    // the queue's jobs carry the row and no prompt
    const [sample] = await analyticsQueue.getJobs(["completed"], 0, 0);
    expect(sample?.id).toMatch(/^an\.j_an\d+\.\d+$/);
    expect(JSON.stringify(sample?.data)).not.toContain("secret prompt");
    // the last batch's jobs complete once its rollup refresh is done, after the rows are in
    await until("the queue drained", async () => {
      return sum(await analyticsQueue.getJobCounts("waiting", "active", "delayed")) === 0;
    });
    const [usage] = await store.hourlyUsage({ ...window, customerId: "acme" });
    const [rollup] = await store.hourlyRollup({ ...window, customerId: "acme" });
    const total = [...gpu.values()].reduce((a, b) => a + b, 0);
    expect([usage?.jobs, usage?.gpu_ms]).toEqual([90, total]);
    expect([rollup?.jobs, rollup?.gpu_ms, rollup?.completed]).toEqual([90, total, 30]);
    await stopRelays();
  });

  it("stores an event handed over again once: a relay's redelivery, and a job added anew", async () => {
    const jobs = ids("re", 12);
    await finishJobs(jobs, "redo");
    // a relay reads the entries and dies before its XACK; the heir hands them over again
    const o = outbox();
    await o.ensureGroup();
    const taken = await o.read("dead-relay", 100, 0);
    expect(taken.length).toBe(jobs.length);
    relay("heir", 200);
    await until(
      "the heir's rows",
      async () => (await store.jobIdsInWindow({ ...window, customerId: "redo" })).size === 12,
    );
    // their jobs complete once the rollup counts the rows too (a refresh after the insert)
    const again = await until("the heir's jobs completed", async () => {
      const done = await analyticsQueue.getJobs(["completed"], 0, 1_000);
      const mine = done.filter((j) => j.id?.includes("j_re"));
      return mine.length === jobs.length ? mine : undefined;
    });
    // the same rows as new BullMQ jobs, as after their completed jobs were removed
    await analyticsQueue.addBulk(
      again.map((j) => ({ name: "row", data: j.data as object, opts: { jobId: `${j.id!}.again` } })),
    );
    await until("the second hand-over done", async () => {
      const states = await Promise.all(again.map((j) => analyticsQueue.getJobState(`${j.id!}.again`)));
      return states.every((st) => st === "completed");
    });
    const [usage] = await store.hourlyUsage({ ...window, customerId: "redo" });
    const [rollup] = await store.hourlyRollup({ ...window, customerId: "redo" });
    expect(usage?.jobs).toBe(12);
    expect([rollup?.jobs, rollup?.gpu_ms]).toEqual([12, usage?.gpu_ms]);
  });

  it("keeps rows in the queue while ClickHouse is gone, and stores each once when it is back", async () => {
    await ch.kill();
    const failedBefore = inserts.filter((i) => !i.ok).length;
    const jobs = ids("down", 40);
    const gpu = await finishJobs(jobs, "outage");
    // the relay hands everything over (billing included) while ClickHouse is away
    const o = outbox();
    await until("outbox handed over", async () => (await o.lag(Date.now())).entries === 0);
    expect(await billingQueue.getJobCountByTypes("waiting", "completed")).toBeGreaterThanOrEqual(jobs.length);
    await until("inserts fail and jobs wait for a retry", async () => {
      const counts = await analyticsQueue.getJobCounts("delayed");
      return inserts.filter((i) => !i.ok).length > failedBefore && (counts.delayed ?? 0) > 0;
    });
    expect((await analyticsQueue.getJobCounts("failed")).failed ?? 0).toBe(0);
    await ch.restart();
    const rows = await until(
      "the outage's rows",
      async () => {
        const got = await store.jobsInWindow({ ...window, customerId: "outage" });
        return got.length >= jobs.length ? got : undefined;
      },
      30_000,
    );
    await until("the queue drained", async () => {
      return sum(await analyticsQueue.getJobCounts("waiting", "active", "delayed")) === 0;
    });
    expect(rows.map((x) => x.job_id).sort()).toEqual([...jobs].sort());
    const [usage] = await store.hourlyUsage({ ...window, customerId: "outage" });
    const [rollup] = await store.hourlyRollup({ ...window, customerId: "outage" });
    const total = [...gpu.values()].reduce((a, b) => a + b, 0);
    expect([usage?.jobs, usage?.gpu_ms]).toEqual([40, total]);
    expect([rollup?.jobs, rollup?.gpu_ms]).toEqual([40, total]);
  }, 60_000);
});
