// The analytics store against a real clickhouse-server (Debian 18.16 in CI): the schema made twice is
// the same schema (and an earlier release's view is dropped), hostile strings go in and come back
// byte for byte (and select their own rows only), a duplicated row is counted once by every query of
// the base table and by the rollup, whose rows are recomputed from the rows and whose newest read
// wins whatever order refreshes land in.
import { createClient, type ClickHouseClient } from "@clickhouse/client";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { rollupKeysOf, type InferenceEvent } from "../../src/core/analytics-event.js";
import type { AnalyticsStore } from "../../src/infra/clickhouse-analytics.js";
import {
  EVENTS_TABLE,
  OLD_HOURLY_TABLE,
  OLD_HOURLY_VIEW,
  ROLLUP_TABLE,
} from "../../src/infra/clickhouse-schema.js";
import { startTestClickHouse, type TestClickHouse } from "../helpers/clickhouse.js";

const HOUR = 3_600_000;
const H0 = Date.UTC(2026, 11, 7, 10);

let ch: TestClickHouse;
let raw: ClickHouseClient;

beforeAll(async () => {
  ch = await startTestClickHouse();
  raw = createClient({ url: ch.url, username: ch.username, password: ch.password });
});
afterAll(async () => {
  await raw?.close();
  await ch?.stop();
});

let n = 0;
function row(over: Partial<InferenceEvent> = {}): InferenceEvent {
  n++;
  const completed = over.completed_ms ?? H0 + n * 1_000;
  return {
    event_id: `job${n}.3`,
    job_id: `job${n}`,
    customer_id: "acme",
    tier: "pro",
    priority: "normal",
    modality: "image",
    model: "flux/schnell",
    task: "t2i",
    status: "complete",
    error_code: "",
    backend: "gpu-a",
    attempts: 1,
    gpu_ms: 100,
    price_micro_usd: 50,
    price_micro_usd_per_gpu_s: 500,
    queue_wait_ms: 10,
    run_ms: 200,
    created_at: Math.floor((completed - 210) / 1000),
    started_at: Math.floor((completed - 200) / 1000),
    completed_at: Math.floor(completed / 1000),
    completed_ms: completed,
    ...over,
  };
}

async function freshStore(): Promise<AnalyticsStore> {
  const store = ch.store(ch.uniqueDatabase());
  await store.ensureSchema();
  return store;
}

/** What the analytics worker does with a batch: the insert, then the refresh of its rollup rows. */
async function write(store: AnalyticsStore, rows: readonly InferenceEvent[]): Promise<number> {
  const stored = await store.insert(rows);
  await store.refreshRollup(rollupKeysOf(rows));
  return stored;
}

async function rawRows<T>(query: string): Promise<T[]> {
  const rs = await raw.query({ query, format: "JSONEachRow" });
  return rs.json<T>();
}

describe("the schema", () => {
  it("is created on start, and a second start changes nothing", async () => {
    const store = await freshStore();
    await write(store, [row()]);
    const show = async () =>
      Promise.all(
        [EVENTS_TABLE, ROLLUP_TABLE].map(async (t) => {
          const rs = await raw.query({
            query: `SHOW CREATE TABLE ${store.database}.${t}`,
            format: "TabSeparated",
          });
          return rs.text();
        }),
      );
    const before = await show();
    await store.ensureSchema();
    // a second process's store on the same database, as a second `start` makes it
    const again = ch.store(store.database);
    await again.ensureSchema();
    expect(await show()).toEqual(before);
    expect(before[0]).toContain("ReplacingMergeTree");
    expect(before[1]).toContain("ReplacingMergeTree(version)");
    const tables = await rawRows<{ name: string }>(
      `SELECT name FROM system.tables WHERE database = '${store.database}' ORDER BY name`,
    );
    expect(tables.map((t) => t.name)).toEqual([EVENTS_TABLE, ROLLUP_TABLE].sort());
    const w = { fromMs: H0, toMs: H0 + HOUR };
    expect((await again.hourlyUsage(w)).map((u) => u.jobs)).toEqual([1]);
    expect((await again.hourlyRollup(w)).map((u) => u.jobs)).toEqual([1]);
  });

  it("drops an earlier release's materialized view on start, and leaves its rollup table as it was", async () => {
    const database = ch.uniqueDatabase();
    const store = ch.store(database);
    await store.ensureSchema();
    // the earlier release's rollup: an AggregatingMergeTree fed by a view of each insert
    await raw.command({
      query: `CREATE TABLE ${database}.${OLD_HOURLY_TABLE} (hour DateTime('UTC'), customer_id String,
        model String, gpu_ms AggregateFunction(sum, UInt64)) ENGINE = AggregatingMergeTree
        PARTITION BY toYYYYMM(hour) ORDER BY (customer_id, model, hour)`,
    });
    await raw.command({
      query: `CREATE MATERIALIZED VIEW ${database}.${OLD_HOURLY_VIEW} TO ${database}.${OLD_HOURLY_TABLE} AS
        SELECT toStartOfHour(completed_at) AS hour, customer_id, model, sumState(gpu_ms) AS gpu_ms
        FROM ${database}.${EVENTS_TABLE} GROUP BY hour, customer_id, model`,
    });
    const oldGpu = async () =>
      (await rawRows<{ g: string }>(`SELECT sumMerge(gpu_ms) AS g FROM ${database}.${OLD_HOURLY_TABLE}`)).map(
        (r) => Number(r.g),
      );
    await write(store, [row({ gpu_ms: 7 })]);
    expect(await oldGpu()).toEqual([7]);
    await ch.store(database).ensureSchema();
    const names = await rawRows<{ name: string }>(
      `SELECT name FROM system.tables WHERE database = '${database}' ORDER BY name`,
    );
    expect(names.map((t) => t.name)).toEqual([EVENTS_TABLE, ROLLUP_TABLE, OLD_HOURLY_TABLE].sort());
    // no longer fed, kept as it was
    await write(store, [row({ gpu_ms: 5 })]);
    expect(await oldGpu()).toEqual([7]);
    expect((await store.hourlyRollup({ fromMs: H0, toMs: H0 + HOUR })).map((r) => r.gpu_ms)).toEqual([12]);
  });
});

describe("hostile strings", () => {
  const hostile = [
    "it's",
    "back\\slash\\",
    "\\'; DROP TABLE inference_events; --",
    "x' OR '1'='1",
    "new\nline\r\ttab",
    "nul\u0000byte\u0001\u007f",
    "ünïcödé 🚀 漢字",
    '`backtick` "double"',
    "%s %d {0} $1 ?",
  ];

  it("round-trip exactly through the insert and every query, and select only their own rows", async () => {
    const store = await freshStore();
    const rows = hostile.map((s, i) => row({ customer_id: s, model: `fam/${i}${s}`, job_id: `j-${s}` }));
    await write(store, [...rows, row({ customer_id: "bystander" })]);
    const w = { fromMs: H0, toMs: H0 + HOUR };
    for (const [i, s] of hostile.entries()) {
      const usage = await store.hourlyUsage({ ...w, customerId: s });
      expect(usage).toEqual([
        { customer_id: s, model: `fam/${i}${s}`, hour_ms: H0, jobs: 1, gpu_ms: 100, price_micro_usd: 50 },
      ]);
      const jobs = await store.jobsInWindow({ ...w, customerId: s });
      expect(jobs.map((j) => [j.job_id, j.customer_id])).toEqual([[`j-${s}`, s]]);
      const rollup = await store.hourlyRollup({ ...w, customerId: s });
      expect(rollup.map((r) => [r.customer_id, r.jobs])).toEqual([[s, 1]]);
    }
    expect((await store.jobIdsInWindow(w)).size).toBe(hostile.length + 1);
    // the tables are all still there
    expect((await store.hourlyUsage(w)).reduce((sum, u) => sum + u.jobs, 0)).toBe(hostile.length + 1);
  });
});

describe("duplicates", () => {
  it("a row stored twice is counted once by the queries of the base table, merged or not", async () => {
    const store = await freshStore();
    const rows = [row(), row({ status: "error", gpu_ms: 0, price_micro_usd: 0 }), row({ model: "flux/dev" })];
    await store.insertUnchecked(rows);
    await store.insertUnchecked(rows.slice(0, 2));
    await store.insertUnchecked([rows[0]!]);
    const w = { fromMs: H0, toMs: H0 + HOUR };
    const check = async () => {
      const usage = await store.hourlyUsage(w);
      expect(usage.map((u) => [u.model, u.jobs, u.gpu_ms, u.price_micro_usd])).toEqual([
        ["flux/dev", 1, 100, 50],
        ["flux/schnell", 2, 100, 50],
      ]);
      expect((await store.jobsInWindow(w)).map((j) => j.job_id).sort()).toEqual(
        rows.map((r) => r.job_id).sort(),
      );
      expect((await store.jobIdsInWindow(w)).size).toBe(3);
    };
    await check();
    // the raw table holds the duplicates until its parts merge
    const count = async () => {
      const rs = await raw.query({
        query: `SELECT count() AS c FROM ${store.database}.${EVENTS_TABLE}`,
        format: "JSONEachRow",
      });
      return Number((await rs.json<{ c: string }>())[0]!.c);
    };
    expect(await count()).toBe(6);
    await raw.command({ query: `OPTIMIZE TABLE ${store.database}.${EVENTS_TABLE} FINAL` });
    expect(await count()).toBe(3);
    await check();
  });

  it("an insert leaves out the events already stored; the rollup counts each event once", async () => {
    const store = await freshStore();
    const rows = [row(), row(), row({ status: "cancelled", gpu_ms: 40, price_micro_usd: 20 })];
    expect(await write(store, rows)).toBe(3);
    // a batch retried after its insert's answer was lost, and a batch with a repeated event
    expect(await write(store, rows)).toBe(0);
    const more = row();
    expect(await write(store, [rows[1]!, more, more])).toBe(1);
    // two inserts of the same events that both passed the "stored?" check: the table holds them twice
    const raced = [row({ status: "error", gpu_ms: 0, price_micro_usd: 0 }), row()];
    await store.insertUnchecked(raced);
    await write(store, raced);
    const w = { fromMs: H0, toMs: H0 + HOUR };
    const [rollup] = await store.hourlyRollup(w);
    expect(rollup).toMatchObject({
      jobs: 6,
      completed: 4,
      cancelled: 1,
      failed: 1,
      gpu_ms: 440,
      price_micro_usd: 220,
    });
    const [usage] = await store.hourlyUsage(w);
    expect(usage).toMatchObject({ jobs: 6, gpu_ms: 440, price_micro_usd: 220 });
    expect(await store.hourlyRollup(w)).toEqual(await store.hourlyRollupOfRows(w));
  });
});

describe("the rollup", () => {
  it("keeps the newest read's row whatever order refreshes land in, merged or not", async () => {
    const store = await freshStore();
    const w = { fromMs: H0, toMs: H0 + HOUR };
    await write(store, [row(), row()]);
    // what a refresh that read only these two rows wrote
    const stale = await rawRows<Record<string, unknown>>(`SELECT * FROM ${store.database}.${ROLLUP_TABLE}`);
    expect(stale.map((r) => Number(r.version))).toEqual([2]);
    await write(store, [row({ gpu_ms: 1 })]);
    const newest = await store.hourlyRollup(w);
    expect(newest.map((r) => [r.jobs, r.gpu_ms])).toEqual([[3, 201]]);
    // that slow refresh lands now, after the newer one
    await raw.insert({ table: `${store.database}.${ROLLUP_TABLE}`, values: stale, format: "JSONEachRow" });
    expect(await store.hourlyRollup(w)).toEqual(newest);
    await raw.command({ query: `OPTIMIZE TABLE ${store.database}.${ROLLUP_TABLE} FINAL` });
    const kept = await rawRows<{ jobs: string }>(`SELECT jobs FROM ${store.database}.${ROLLUP_TABLE}`);
    expect(kept.map((r) => Number(r.jobs))).toEqual([3]);
    expect(await store.hourlyRollup(w)).toEqual(newest);
  });

  it("ends exact after refreshes racing inserts", async () => {
    const store = await freshStore();
    const w = { fromMs: H0, toMs: H0 + 2 * HOUR };
    const batches = Array.from({ length: 8 }, (_, b) =>
      Array.from({ length: 20 }, (_, i) =>
        row({
          completed_ms: H0 + (b * 20 + i) * 40_000,
          completed_at: Math.floor((H0 + (b * 20 + i) * 40_000) / 1000),
        }),
      ),
    );
    const keys = rollupKeysOf(batches.flat());
    await Promise.all(
      batches.map(async (b, i) => {
        await store.insert(b);
        // refreshes of every key, overlapping the other batches' inserts
        await Promise.all([store.refreshRollup(keys), store.refreshRollup(rollupKeysOf(b))]);
        if (i % 2 === 0) await store.refreshHours(w);
      }),
    );
    const rollup = await store.hourlyRollup(w);
    expect(rollup.map((r) => r.jobs)).toEqual([90, 70]);
    expect(rollup).toEqual(await store.hourlyRollupOfRows(w));
  });

  it("has exact quantiles of queue wait and run time: the value at ⌊level · n⌋ of the sorted values", async () => {
    const store = await freshStore();
    // 20 jobs: waits 1..20 ms, runs 100, 200, … 2000 ms, in a shuffled order
    const order = [7, 3, 19, 0, 12, 5, 16, 9, 1, 14, 18, 2, 11, 6, 17, 4, 13, 8, 15, 10];
    await write(
      store,
      order.map((i) => row({ queue_wait_ms: i + 1, run_ms: (i + 1) * 100 })),
    );
    const [r] = await store.hourlyRollup({ fromMs: H0, toMs: H0 + HOUR });
    expect(r).toMatchObject({
      queue_wait_p50_ms: 11,
      queue_wait_p95_ms: 20,
      run_p50_ms: 1100,
      run_p95_ms: 2000,
    });
  });

  it("refreshes every hour of a span with rows, or only the hours it lacks", async () => {
    const store = await freshStore();
    const at = (h: number, over: Partial<InferenceEvent> = {}) => {
      const ms = H0 + h * HOUR + 1_000;
      return row({ completed_ms: ms, completed_at: Math.floor(ms / 1000), ...over });
    };
    const span = { fromMs: H0, toMs: H0 + 4 * HOUR };
    await write(store, [at(0), at(1)]);
    // rows no refresh followed: in hour 1 (which the rollup has) and hour 3 (which it lacks)
    await store.insertUnchecked([at(1), at(3), at(3)]);
    expect(await store.refreshHours(span, { onlyMissing: true })).toBe(1);
    expect((await store.hourlyRollup(span)).map((r) => [(r.hour_ms - H0) / HOUR, r.jobs])).toEqual([
      [0, 1],
      [1, 1],
      [3, 2],
    ]);
    expect(await store.refreshHours(span)).toBe(3);
    expect(await store.hourlyRollup(span)).toEqual(await store.hourlyRollupOfRows(span));
    expect((await store.hourlyRollup(span)).map((r) => r.jobs)).toEqual([1, 2, 2]);
    // an aborted signal ends it before the next hour
    const stop = new AbortController();
    stop.abort();
    expect(await store.refreshHours(span, { signal: stop.signal })).toBe(0);
  });
});

describe("windows", () => {
  it("cut at the millisecond, [from, to), and group by customer, model and UTC hour", async () => {
    const store = await freshStore();
    const edge = H0 + HOUR; // 11:00:00.000
    await write(store, [
      row({ completed_ms: edge - 1, completed_at: Math.floor((edge - 1) / 1000) }), // 10:59:59.999
      row({ completed_ms: edge, completed_at: edge / 1000 }),
      row({ completed_ms: edge + 500, completed_at: edge / 1000, customer_id: "other" }),
      row({ completed_ms: edge + HOUR, completed_at: (edge + HOUR) / 1000 }),
    ]);
    const usage = await store.hourlyUsage({ fromMs: edge - 1, toMs: edge + HOUR });
    expect(usage.map((u) => [u.customer_id, u.hour_ms, u.jobs])).toEqual([
      ["acme", H0, 1],
      ["acme", edge, 1],
      ["other", edge, 1],
    ]);
    expect((await store.jobsInWindow({ fromMs: edge, toMs: edge + 500 })).length).toBe(1);
    expect((await store.jobsInWindow({ fromMs: edge + 1, toMs: edge + 501 })).length).toBe(1);
    expect((await store.jobsInWindow({ fromMs: edge + 501, toMs: edge + HOUR })).length).toBe(0);
    const rollup = await store.hourlyRollup({ fromMs: H0, toMs: edge + 2 * HOUR, customerId: "acme" });
    expect(rollup.map((r) => [r.hour_ms, r.jobs])).toEqual([
      [H0, 1],
      [edge, 1],
      [edge + HOUR, 1],
    ]);
  });
});
