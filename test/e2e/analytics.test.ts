// Analytics through the whole system, with real processes (README "Analytics"):
//  1. `start` with no CLICKHOUSE_URL embeds a clickhouse-server under DATA_DIR: a generated image's
//     job shows up as a row with the ledger's GPU time, and stopping the gateway stops the server.
//  2. A gateway on an external ClickHouse that goes away for a while: the jobs submitted meanwhile
//     finish and are billed as ever, and their rows arrive, once each, after the server is back on
//     the same port and data — half of them stored before, as an insert the kill cut short leaves
//     them (in the table, nothing after) — and the dashboard rollup counts every one exactly once.
import { existsSync, readFileSync, readdirSync } from "node:fs";
import { join } from "node:path";
import { Queue } from "bullmq";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { InferenceEvent } from "../../src/core/analytics-event.js";
import { createAnalyticsStore } from "../../src/infra/clickhouse-analytics.js";
import { runningEmbeddedClickHouse } from "../../src/infra/clickhouse-server.js";
import { isAlive } from "../../src/infra/embedded-redis.js";
import { ANALYTICS_QUEUE } from "../../src/queues/keys.js";
import { startTestClickHouse, type TestClickHouse } from "../helpers/clickhouse.js";
import { E2eHarness, call, foxRequest, submitJob, token, until, waitTerminal } from "../helpers/processes.js";

const HOUR = 3_600_000;
/** The sum of BullMQ's job counts. */
const sum = (counts: Record<string, number>): number => Object.values(counts).reduce((a, b) => a + b, 0);
let h: E2eHarness;
let ch: TestClickHouse | undefined;

/** Ledger lines (job id → GPU ms) over every file of every pipeline process under `dataDir`. */
function ledgerGpu(dataDir: string): Map<string, number> {
  const out = new Map<string, number>();
  const root = join(dataDir, "ledger");
  if (!existsSync(root)) return out;
  for (const day of readdirSync(root))
    for (const f of readdirSync(join(root, day)))
      for (const line of readFileSync(join(root, day, f), "utf8").split("\n"))
        if (line !== "") {
          const e = JSON.parse(line) as { job_id: string; gpu_ms: number };
          out.set(e.job_id, e.gpu_ms);
        }
  return out;
}

beforeAll(() => {
  h = new E2eHarness();
});
afterAll(async () => {
  await h?.cleanup();
  await ch?.stop();
});

describe("analytics through the whole system", () => {
  it("`start` embeds a clickhouse-server: a generated image shows up as a row, and it stops with the rest", async () => {
    const dataDir = h.tempDir();
    const gw = await h.start(undefined, {
      dataDir,
      name: "start (embedded clickhouse)",
      env: { ANALYTICS: undefined, ANALYTICS_FLUSH_MS: "100", SIM_STEP_MS: "2" },
    });
    const bearer = await token("analytics-dev", { tier: "pro" });
    const res = await call(gw.url, "/image/flux/schnell/t2i", {
      method: "POST",
      token: bearer,
      body: { prompt: "a lighthouse" },
    });
    expect(res.status).toBe(200);
    const jobId = res.headers.get("x-job-id") ?? "";
    await res.arrayBuffer();
    const embedded = await runningEmbeddedClickHouse(dataDir);
    expect(embedded?.url).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
    const store = createAnalyticsStore({ ...embedded!, database: "render_gateway" });
    try {
      const w = { fromMs: Date.now() - HOUR, toMs: Date.now() + HOUR, customerId: "analytics-dev" };
      const [row] = await until("the image's row", async () => {
        const rows = await store.jobsInWindow(w);
        return rows.length > 0 ? rows : undefined;
      });
      expect(row).toMatchObject({ customer_id: "analytics-dev", model: "flux/schnell", status: "complete" });
      if (jobId !== "") expect(row?.job_id).toBe(jobId);
      const billed = await until("the ledger line", async () => ledgerGpu(dataDir).get(row!.job_id));
      expect(row?.gpu_ms).toBe(billed);
    } finally {
      await store.close();
    }
    const pid = Number(readFileSync(join(dataDir, "run", "clickhouse.pid"), "utf8"));
    expect(isAlive(pid)).toBe(true);
    const stopped = await gw.proc.stop();
    expect([stopped.code, stopped.forced]).toEqual([0, false]);
    await until("the embedded clickhouse-server gone", async () => !isAlive(pid), 15_000);
    expect(existsSync(join(dataDir, "run", "clickhouse.pid"))).toBe(false);
  });

  it("jobs submitted while ClickHouse is away finish undelayed; their rows arrive once it is back", async () => {
    ch = await startTestClickHouse();
    const database = ch.uniqueDatabase();
    const dataDir = h.tempDir();
    const gw = await h.start(undefined, {
      dataDir,
      name: "start (external clickhouse)",
      env: {
        ...ch.env(database),
        ANALYTICS: undefined,
        ANALYTICS_FLUSH_MS: "100",
        ANALYTICS_RETRY_MAX_MS: "300",
        SIM_STEP_MS: "2",
      },
    });
    const store = ch.store(database);
    const bearer = await token("outage", { tier: "pro" });
    // one job while ClickHouse is there: the schema was made at start and rows flow
    const first = await submitJob(gw.url, bearer, foxRequest("before", 4));
    await waitTerminal(gw.url, bearer, [first.id]);
    const w = { fromMs: Date.now() - HOUR, toMs: Date.now() + HOUR, customerId: "outage" };
    await until("the first row", async () => (await store.jobIdsInWindow(w)).has(first.id));

    await ch.kill();
    const ids: string[] = [];
    for (let i = 0; i < 20; i++) ids.push((await submitJob(gw.url, bearer, foxRequest(`away ${i}`, 4))).id);
    const jobs = await waitTerminal(gw.url, bearer, ids);
    expect(jobs.map((j) => j.status)).toEqual(ids.map(() => "complete"));
    // billed as ever, while their analytics rows wait in the queue
    const billed = await until("every job billed", async () => {
      const gpu = ledgerGpu(dataDir);
      return ids.every((id) => gpu.has(id)) ? gpu : undefined;
    });
    const queue = new Queue(ANALYTICS_QUEUE, { connection: h.redis(), prefix: h.prefix });
    try {
      await until("rows waiting for ClickHouse", async () => {
        return sum(await queue.getJobCounts("waiting", "active", "delayed")) > 0;
      });
      // the kill cut an insert short: half of the waiting rows are in the table, nothing after them
      // ran, and their jobs are retried once the server is back
      const waiting = await until("the outage's rows in the queue", async () => {
        const jobs = await queue.getJobs(["waiting", "active", "delayed", "prioritized"], 0, 1_000);
        const mine = jobs
          .map((j) => (j.data as { row: InferenceEvent }).row)
          .filter((r) => ids.includes(r.job_id));
        return mine.length === ids.length ? mine : undefined;
      });
      await ch.storeCutShortWhileAway(database, waiting.slice(0, ids.length / 2));
      await ch.restart();
      const rows = await until(
        "every row after ClickHouse is back",
        async () => {
          const got = await store.jobsInWindow(w);
          return got.length >= ids.length + 1 ? got : undefined;
        },
        30_000,
      );
      await until("the queue drained", async () => {
        return sum(await queue.getJobCounts("waiting", "active", "delayed", "failed")) === 0;
      });
      expect(rows.map((r) => r.job_id).sort()).toEqual([first.id, ...ids].sort());
      for (const r of rows) expect(r.gpu_ms).toBe(billed.get(r.job_id) ?? ledgerGpu(dataDir).get(r.job_id));
      // summed over hours: the run may cross one
      const total = (xs: readonly { jobs: number; gpu_ms: number }[]) =>
        xs.reduce((t, x) => [t[0]! + x.jobs, t[1]! + x.gpu_ms], [0, 0]);
      const gpu = rows.reduce((s, r) => s + r.gpu_ms, 0);
      expect(total(await store.hourlyUsage(w))).toEqual([21, gpu]);
      // the rollup counts the rows the cut-short insert stored (their retried batch refreshed it)
      expect(total(await store.hourlyRollup(w))).toEqual([21, gpu]);
      expect(await store.hourlyRollup(w)).toEqual(await store.hourlyRollupOfRows(w));
    } finally {
      await queue.close();
    }
    const stopped = await gw.proc.stop();
    expect([stopped.code, stopped.forced]).toEqual([0, false]);
  }, 90_000);
});
