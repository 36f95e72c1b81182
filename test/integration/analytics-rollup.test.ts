// The dashboard rollup equals what the stored rows say, through the analytics worker on a real
// Redis, real BullMQ and a real clickhouse-server (README "Analytics"), in the three ways a rollup
// added up as rows arrive (a materialized view) drifts from its table:
//  1. an insert a ClickHouse kill cut short after the table's own write: the rows are stored, and
//     the batch's retry finds them stored and skips them;
//  2. two inserters of the same events at once (two pipeline processes, or a retried batch racing
//     its original): both pass the "already stored?" check, and the table holds each event twice;
//  3. late rows for an hour already rolled up, arriving as in 2.
// Each compares the rollup with the base table's queries (hourlyUsage, jobsInWindow) for every
// customer × model × hour, then with the same figures computed from the rows at read time.
import { Queue } from "bullmq";
import { Redis } from "ioredis";
import { pino } from "pino";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { AnalyticsSink, InferenceEvent } from "../../src/core/analytics-event.js";
import type { AnalyticsStore } from "../../src/infra/clickhouse-analytics.js";
import {
  ANALYTICS_ATTEMPTS,
  ANALYTICS_BACKOFF,
  startAnalyticsWorker,
  type AnalyticsWorker,
} from "../../src/pipeline/analytics.js";
import { ANALYTICS_QUEUE } from "../../src/queues/keys.js";
import { startTestClickHouse, type TestClickHouse } from "../helpers/clickhouse.js";
import { until } from "../helpers/processes.js";
import { redisUrl, testRedis, type TestRedis } from "../helpers/redis.js";

const logger = pino({ level: "silent" });
const HOUR = 3_600_000;
const H0 = Date.UTC(2026, 11, 8, 9);
/** Rows per batch, and per `add` of an inserter. */
const BATCH = 30;
/** Two whole hours, H0 and the next. */
const W = { fromMs: H0, toMs: H0 + 2 * HOUR };

let ch: TestClickHouse;
const cleanups: (() => Promise<void>)[] = [];

beforeAll(async () => {
  ch = await startTestClickHouse();
});
afterAll(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
  await ch?.stop();
});

let n = 0;
/** A finished job at `ms`, its outcome and GPU time varying with its number. */
function row(ms: number, customer_id = "acme", model = "flux/schnell"): InferenceEvent {
  n++;
  const status = ["complete", "complete", "error", "cancelled"][n % 4]!;
  const gpu = status === "complete" ? 100 + n : 0;
  return {
    event_id: `j_rollup${n}.5`,
    job_id: `j_rollup${n}`,
    customer_id,
    tier: "pro",
    priority: "normal",
    modality: "image",
    model,
    task: "t2i",
    status,
    error_code: status === "complete" ? "" : "backend_error",
    backend: "gpu",
    attempts: 1,
    gpu_ms: gpu,
    price_micro_usd: gpu * 2,
    price_micro_usd_per_gpu_s: 2000,
    queue_wait_ms: n % 17,
    run_ms: gpu,
    created_at: Math.floor((ms - 500) / 1000),
    started_at: Math.floor((ms - 400) / 1000),
    completed_at: Math.floor(ms / 1000),
    completed_ms: ms,
  };
}

/** `count` rows spread over H0's hour and the next, for two customers and two models. */
function rows(count: number, firstMs = H0 + 1_000, stepMs = 170_000): InferenceEvent[] {
  return Array.from({ length: count }, (_, i) =>
    row(firstMs + i * stepMs, i % 3 === 0 ? "zed" : "acme", i % 2 === 0 ? "flux/schnell" : "wan/t2v"),
  );
}

/** An analytics worker of its own (a pipeline process) on its own queue, writing through `sink`. */
async function inserter(
  sink: AnalyticsSink,
): Promise<{ add(rows: readonly InferenceEvent[]): Promise<void> }> {
  const r: TestRedis = testRedis();
  const connection = new Redis(redisUrl(), { maxRetriesPerRequest: null });
  const queue = new Queue(ANALYTICS_QUEUE, {
    connection: r.client,
    prefix: r.prefix,
    defaultJobOptions: { attempts: ANALYTICS_ATTEMPTS, backoff: { type: ANALYTICS_BACKOFF } },
  });
  const worker: AnalyticsWorker = await startAnalyticsWorker({
    sink,
    connection,
    prefix: r.prefix,
    batch: BATCH,
    flushMs: 5_000,
    retryMaxMs: 200,
    lockMs: 5_000,
    logger,
  });
  cleanups.push(async () => {
    await worker.close();
    await queue.close();
    connection.disconnect();
    await r.cleanup();
  });
  return {
    async add(batch) {
      const ids = batch.map((x) => `an.${x.event_id}`);
      await queue.addBulk(batch.map((x, i) => ({ name: "row", data: { row: x }, opts: { jobId: ids[i]! } })));
      await until(
        "the rows' jobs done",
        async () =>
          (await Promise.all(ids.map((id) => queue.getJobState(id)))).every((s) => s === "completed"),
        30_000,
        50,
      );
    },
  };
}

/** The store as the worker writes to it, every call passed through. */
function plain(store: AnalyticsStore): AnalyticsSink {
  return {
    insert: (batch) => store.insert(batch),
    refreshRollup: (keys) => store.refreshRollup(keys),
    refreshHours: (span, opts) => store.refreshHours(span, opts),
  };
}

/**
 * Sinks of two inserters whose next inserts, once `arm()` is called, start together: each waits
 * for the other's before its own "already stored?" lookup, so both look before either writes.
 * `stored` counts the rows each inserter's inserts found new.
 */
function racing(store: AnalyticsStore): {
  sinks: [AnalyticsSink, AnalyticsSink];
  stored: [number, number];
  arm(): void;
} {
  const stored: [number, number] = [0, 0];
  let gate: { arrived: number; open: Promise<void>; release: () => void } | undefined;
  const sink = (i: 0 | 1): AnalyticsSink => ({
    ...plain(store),
    async insert(batch) {
      const g = gate;
      if (g !== undefined) {
        if (++g.arrived === 2) {
          gate = undefined;
          g.release();
        }
        await g.open;
      }
      const s = await store.insert(batch);
      stored[i] += s;
      return s;
    },
  });
  return {
    sinks: [sink(0), sink(1)],
    stored,
    arm() {
      let release = () => {};
      const open = new Promise<void>((resolve) => (release = resolve));
      gate = { arrived: 0, open, release };
    },
  };
}

/** The rollup equals the base table's figures for every customer × model × hour of W. */
async function expectExact(store: AnalyticsStore, jobs: number): Promise<void> {
  const usage = await store.hourlyUsage(W);
  const byStatus = new Map<string, Record<string, number>>();
  for (const j of await store.jobsInWindow(W)) {
    const key = `${Math.floor(j.completed_ms / HOUR) * HOUR}|${j.customer_id}|${j.model}`;
    const counts = byStatus.get(key) ?? {};
    counts[j.status] = (counts[j.status] ?? 0) + 1;
    byStatus.set(key, counts);
  }
  const expected = usage.map((u) => {
    const s = byStatus.get(`${u.hour_ms}|${u.customer_id}|${u.model}`) ?? {};
    return [
      u.hour_ms,
      u.customer_id,
      u.model,
      u.jobs,
      u.gpu_ms,
      u.price_micro_usd,
      s.complete ?? 0,
      s.error ?? 0,
      s.cancelled ?? 0,
    ];
  });
  const rollup = await store.hourlyRollup(W);
  const got = rollup.map((r) => [
    r.hour_ms,
    r.customer_id,
    r.model,
    r.jobs,
    r.gpu_ms,
    r.price_micro_usd,
    r.completed,
    r.failed,
    r.cancelled,
  ]);
  expect(got).toEqual(expected);
  expect(usage.reduce((t, u) => t + u.jobs, 0)).toBe(jobs);
  // both hours, both customers, both models
  expect(usage.length).toBe(8);
  // every figure, quantiles included
  expect(rollup).toEqual(await store.hourlyRollupOfRows(W));
}

async function freshStore(): Promise<AnalyticsStore> {
  const store = ch.store(ch.uniqueDatabase());
  await store.ensureSchema();
  return store;
}

describe("the rollup equals the stored rows", () => {
  it("after an insert a kill cut short: the retried batch finds its rows stored, and its refresh counts them", async () => {
    const store = await freshStore();
    const worker = await inserter(plain(store));
    await worker.add(rows(BATCH));
    // the next batch: stored in the table, then the kill (nothing after the table's write ran)
    const cut = rows(BATCH, H0 + 30_000, 190_000);
    await ch.storeCutShort(store.database, cut);
    // its jobs failed with the insert and are retried once ClickHouse is back
    await worker.add(cut);
    await expectExact(store, 2 * BATCH);
  });

  it("after two inserters stored the same events at once", async () => {
    const store = await freshStore();
    const race = racing(store);
    const [a, b] = await Promise.all(race.sinks.map((s) => inserter(s)));
    const same = rows(BATCH);
    race.arm();
    await Promise.all([a!.add(same), b!.add(same)]);
    // both passed the "already stored?" check: each event is in the table twice
    expect(race.stored).toEqual([BATCH, BATCH]);
    await expectExact(store, BATCH);
  });

  it("after late rows for an hour already rolled up, stored by two inserters at once", async () => {
    const store = await freshStore();
    const race = racing(store);
    const [a, b] = await Promise.all(race.sinks.map((s) => inserter(s)));
    await a!.add(rows(BATCH, H0 + 5_000, 160_000));
    const [hour0] = await store.hourlyRollup({ fromMs: H0, toMs: H0 + HOUR, customerId: "acme" });
    expect(hour0?.jobs).toBeGreaterThan(0);
    // later, rows of those same hours (they waited in the queue through an outage), twice at once
    const late = rows(BATCH, H0 + 7_000, 200_000);
    race.arm();
    await Promise.all([a!.add(late), b!.add(late)]);
    expect(race.stored).toEqual([2 * BATCH, BATCH]);
    await expectExact(store, 2 * BATCH);
    const [after] = await store.hourlyRollup({ fromMs: H0, toMs: H0 + HOUR, customerId: "acme" });
    expect(after!.jobs).toBeGreaterThan(hour0!.jobs);
  });
});
