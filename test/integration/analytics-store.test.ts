// The analytics store against a real clickhouse-server (Debian 18.16 in CI): the schema made twice is
// the same schema, hostile strings go in and come back byte for byte (and select their own rows
// only), a duplicated row is counted once by every query of the base table, and an insert leaves out
// the events already stored, so the rollup's sums stay exact.
import { createClient, type ClickHouseClient } from "@clickhouse/client";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { InferenceEvent } from "../../src/core/analytics-event.js";
import {
  EVENTS_TABLE,
  HOURLY_TABLE,
  HOURLY_VIEW,
  type AnalyticsStore,
} from "../../src/infra/clickhouse-analytics.js";
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

describe("the schema", () => {
  it("is created on start, and a second start changes nothing", async () => {
    const store = await freshStore();
    await store.insert([row()]);
    const show = async () =>
      Promise.all(
        [EVENTS_TABLE, HOURLY_TABLE, HOURLY_VIEW].map(async (t) => {
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
    expect(before[1]).toContain("AggregatingMergeTree");
    const w = { fromMs: H0, toMs: H0 + HOUR };
    expect((await again.hourlyUsage(w)).map((u) => u.jobs)).toEqual([1]);
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
    await store.insert([...rows, row({ customer_id: "bystander" })]);
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

  it("an insert leaves out the events already stored, so the rollup adds each once", async () => {
    const store = await freshStore();
    const rows = [row(), row(), row({ status: "cancelled", gpu_ms: 40, price_micro_usd: 20 })];
    expect(await store.insert(rows)).toBe(3);
    // a batch retried after its insert's answer was lost, and a batch with a repeated event
    expect(await store.insert(rows)).toBe(0);
    const more = row();
    expect(await store.insert([rows[1]!, more, more])).toBe(1);
    const w = { fromMs: H0, toMs: H0 + HOUR };
    const [rollup] = await store.hourlyRollup(w);
    expect(rollup).toMatchObject({
      jobs: 4,
      completed: 3,
      cancelled: 1,
      failed: 0,
      gpu_ms: 340,
      price_micro_usd: 170,
    });
    const [usage] = await store.hourlyUsage(w);
    expect(usage).toMatchObject({ jobs: 4, gpu_ms: 340, price_micro_usd: 170 });
  });
});

describe("windows", () => {
  it("cut at the millisecond, [from, to), and group by customer, model and UTC hour", async () => {
    const store = await freshStore();
    const edge = H0 + HOUR; // 11:00:00.000
    await store.insert([
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
