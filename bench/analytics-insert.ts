// Bench 11 — analytics insert: how fast finished jobs reach ClickHouse as rows, against how fast the
// workers finish them. Each round renders N jobs through our worker role on the simulated backend
// answering at once (SIM_STEP_MS=0: the fastest the render path goes) with no pipeline running, so
// the outbox holds N terminal events; then one pipeline process starts, on a clickhouse-server of
// this run (Debian's 18.16 here), and drains them: relay → BullMQ `analytics` → batched JSONEachRow
// inserts, each followed by the refresh of its rollup rows (billing runs beside it, as in production).
// The figure is the rate at which distinct rows appear in ClickHouse and in the rollup (the round
// ends when both hold all N) over the render rate of the same round (target ≥ 2).
//   npx tsx bench/analytics-insert.ts [--jobs 2000] [--concurrency 16] [--rounds 3]
import { join } from "node:path";
import { createClient } from "@clickhouse/client";
import { createAdmitter, workerBody } from "./lib/admit.js";
import { startPipeline, startWorker, startZeroStepSim } from "./lib/gateway.js";
import { isMain, options, standalone, type BenchContext, type BenchDef } from "./lib/harness.js";
import { waitUntil } from "./lib/proc.js";
import { fmt, pairedFigure, printTable } from "./lib/report.js";
import { createAnalyticsStore } from "../src/infra/clickhouse-analytics.js";
import { EVENTS_TABLE } from "../src/infra/clickhouse-schema.js";
import { spawnClickHouseServer } from "../src/infra/clickhouse-server.js";

const PREFIX = "{bench}";
const CUSTOMER = "bench-analytics";

interface Round {
  side: "analytics" | "render";
  round: number;
  jobs: number;
  spanMs: number;
  perS: number;
}

export const analyticsInsertBench: BenchDef = {
  name: "analytics-insert",
  title: "Bench 11 — analytics rows into ClickHouse vs render (sim at SIM_STEP_MS=0)",
  async run(ctx: BenchContext) {
    const { jobs, concurrency, rounds } = options({ jobs: 2000, concurrency: 16, rounds: 3 });
    const redis = ctx.redis.client;
    const ch = await spawnClickHouseServer({ dir: join(ctx.dir, "clickhouse") });
    const killOnExit = () => void ch.kill("SIGKILL");
    process.once("exit", killOnExit);
    const client = createClient({ url: ch.url, username: "default", password: ch.password });
    const { sim, backendsFile } = await startZeroStepSim(ctx.dir, ctx.logDir, concurrency);
    const admitter = createAdmitter({
      redis,
      prefix: PREFIX,
      dataDir: join(ctx.dir, "admit"),
      body: workerBody(),
      customerId: CUSTOMER,
    });
    const results: Round[] = [];
    const inserts: string[] = [];
    const rollupLag: string[] = [];
    try {
      for (let r = 1; r <= rounds; r++) {
        await ctx.redis.flush();
        const ids = await admitter.admit(jobs);
        const worker = await startWorker({
          name: `worker-${r}`,
          redisUrl: ctx.redis.url,
          prefix: PREFIX,
          dataDir: join(ctx.dir, `worker-${r}`),
          logDir: ctx.logDir,
          redis,
          extra: {
            BACKENDS_FILE: backendsFile,
            WORKER_CONCURRENCY: String(concurrency),
            JOB_RETENTION_COUNT: String(Math.max(100_000, jobs)),
          },
        });
        await waitUntil(
          "jobs to finish",
          async () => (await redis.zcard(`${PREFIX}:done`)) >= jobs,
          120_000,
          20,
          [worker],
        );
        let first = Infinity;
        let last = 0;
        for (const [started, completed] of await admitter.fields(ids, ["started", "completed"])) {
          if (started) first = Math.min(first, Number(started));
          if (completed) last = Math.max(last, Number(completed));
        }
        await worker.stop();
        results.push({
          side: "render",
          round: r,
          jobs,
          spanMs: last - first,
          perS: (jobs / (last - first)) * 1000,
        });

        const database = `bench_r${r}`;
        const rows = async (): Promise<number> => {
          const rs = await client.query({
            query: `SELECT uniqExact(event_id) AS n FROM ${database}.${EVENTS_TABLE}`,
            format: "JSONEachRow",
          });
          return Number((await rs.json<{ n: string }>())[0]?.n ?? 0);
        };
        const pipeline = await startPipeline({
          name: `pipeline-${r}`,
          redisUrl: ctx.redis.url,
          prefix: PREFIX,
          dataDir: join(ctx.dir, `pipeline-${r}`),
          logDir: ctx.logDir,
          redis,
          extra: {
            CLICKHOUSE_URL: ch.url,
            CLICKHOUSE_USER: "default",
            CLICKHOUSE_PASSWORD: ch.password,
            CLICKHOUSE_DATABASE: database,
          },
        });
        // the rollup counts a batch's rows once its refresh is done, after the insert: the round
        // ends when both have every row
        const store = createAnalyticsStore({
          url: ch.url,
          username: "default",
          password: ch.password,
          database,
        });
        const rolledUp = async (): Promise<number> => {
          const hourly = await store.hourlyRollup({ fromMs: 0, toMs: Date.now() + 7_200_000 });
          return hourly.reduce((n, h) => n + h.jobs, 0);
        };
        const started = Date.now();
        await waitUntil("rows to arrive", async () => (await rows()) >= jobs, 120_000, 20, [pipeline]);
        const rowsSpan = Date.now() - started;
        await waitUntil("the rollup to count them", async () => (await rolledUp()) >= jobs, 120_000, 20, [
          pipeline,
        ]);
        const span = Date.now() - started;
        await store.close();
        await pipeline.stop();
        results.push({ side: "analytics", round: r, jobs, spanMs: span, perS: (jobs / span) * 1000 });
        rollupLag.push(`round ${r}: rows ${rowsSpan} ms, rollup ${span} ms`);
        const parts = await client.query({
          query: `SELECT count() AS parts FROM system.parts WHERE database = '${database}' AND table = '${EVENTS_TABLE}'`,
          format: "JSONEachRow",
        });
        inserts.push(`round ${r}: ${(await parts.json<{ parts: string }>())[0]?.parts ?? "?"} parts`);
        ctx.log(
          `round ${r}: render ${fmt(results.at(-2)!.perS)} jobs/s, analytics ${fmt(results.at(-1)!.perS)} rows/s`,
        );
      }
    } finally {
      await sim.close();
      await client.close();
      await ch.stop();
      process.removeListener("exit", killOnExit);
    }
    printTable(
      ["round", "side", "per s", "span ms"],
      results.map((r) => [String(r.round), r.side, fmt(r.perS), String(r.spanMs)]),
    );
    return {
      params: { jobs, concurrency, rounds, simStepMs: 0, clickhouse: "Debian clickhouse-server" },
      rounds: results as unknown as Record<string, unknown>[],
      figures: [
        pairedFigure({
          what: "analytics rows into ClickHouse vs render rate",
          unit: "per s",
          rows: results,
          isOurs: (r) => r.side === "analytics",
          value: (r) => r.perS,
          names: ["analytics", "render"],
          target: { op: ">=", value: 2 },
        }),
      ],
      problems: [],
      notes: [
        "render: N jobs through one worker process (concurrency C) on the simulated backend answering at once, no pipeline running",
        "analytics: one pipeline process draining the N terminal events left in the outbox (relay → BullMQ analytics → batched inserts and rollup refreshes, billing beside it), from its relay's start to N distinct rows in ClickHouse and N jobs in the rollup",
        `time to every row, and to the rollup counting them: ${rollupLag.join("; ")}`,
        `parts written (one per insert before merges): ${inserts.join("; ")}`,
      ],
    };
  },
};

if (isMain(import.meta.url)) standalone(analyticsInsertBench);
