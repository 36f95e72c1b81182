// Bench 8 — pipeline: how fast the follow-up pipeline drains finished jobs, against how fast the
// workers finish them. Each round renders N jobs through our worker role on the simulated backend
// answering at once (SIM_STEP_MS=0: the fastest the render path goes) with no pipeline running, so
// the outbox holds N terminal events; then one pipeline process starts and drains them (relay →
// BullMQ follow-up queues → billing: ledger line fsynced, usage counted). The figure is the drain
// rate over the render rate of the same round (target ≥ 2: the pipeline keeps up with twice the
// fastest render rate).
//   npx tsx bench/pipeline.ts [--jobs 2000] [--concurrency 16] [--rounds 3]
import { join } from "node:path";
import { createAdmitter, workerBody } from "./lib/admit.js";
import { startPipeline, startWorker, startZeroStepSim } from "./lib/gateway.js";
import { isMain, options, standalone, type BenchContext, type BenchDef } from "./lib/harness.js";
import { waitUntil } from "./lib/proc.js";
import { fmt, pairedFigure, printTable } from "./lib/report.js";
import { createKeys } from "../src/queues/keys.js";
import { utcDay } from "../src/core/time.js";

const PREFIX = "{bench}";
const CUSTOMER = "bench-pipeline";

interface Round {
  side: "pipeline" | "render";
  round: number;
  jobs: number;
  spanMs: number;
  perS: number;
}

/** Jobs the usage counts of the bench customer hold (every day key of the run). */
async function billedJobs(ctx: BenchContext): Promise<number> {
  const keys = createKeys(PREFIX);
  const day = utcDay(Date.now());
  const counts = await ctx.redis.client.hgetall(keys.usage(CUSTOMER, day));
  let n = 0;
  // the jobs count of each hour and model (keys.ts usageField, kind j)
  for (const [field, v] of Object.entries(counts)) if (field.endsWith("|j")) n += Number(v);
  return n;
}

export const pipelineBench: BenchDef = {
  name: "pipeline",
  title: "Bench 8 — pipeline drain vs render (sim at SIM_STEP_MS=0)",
  async run(ctx: BenchContext) {
    const { jobs, concurrency, rounds } = options({ jobs: 2000, concurrency: 16, rounds: 3 });
    const redis = ctx.redis.client;
    const { sim, backendsFile } = await startZeroStepSim(ctx.dir, ctx.logDir, concurrency);
    const admitter = createAdmitter({
      redis,
      prefix: PREFIX,
      dataDir: join(ctx.dir, "admit"),
      body: workerBody(),
      customerId: CUSTOMER,
    });
    const results: Round[] = [];
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
        const t0 = Date.now();
        const pipeline = await startPipeline({
          name: `pipeline-${r}`,
          redisUrl: ctx.redis.url,
          prefix: PREFIX,
          dataDir: join(ctx.dir, `pipeline-${r}`),
          logDir: ctx.logDir,
          redis,
          // billing alone, as before analytics existed (bench/analytics-insert.ts measures that stage)
          extra: { ANALYTICS: "off" },
        });
        const started = Date.now();
        await waitUntil("events to drain", async () => (await billedJobs(ctx)) >= jobs, 120_000, 10, [
          pipeline,
        ]);
        const span = Date.now() - started;
        await pipeline.stop();
        results.push({ side: "pipeline", round: r, jobs, spanMs: span, perS: (jobs / span) * 1000 });
        ctx.log(
          `round ${r}: render ${fmt(results.at(-2)!.perS)} jobs/s, pipeline ${fmt(results.at(-1)!.perS)} events/s (start ${Date.now() - t0 - span} ms)`,
        );
      }
    } finally {
      await sim.close();
    }
    printTable(
      ["round", "side", "per s", "span ms"],
      results.map((r) => [String(r.round), r.side, fmt(r.perS), String(r.spanMs)]),
    );
    return {
      params: { jobs, concurrency, rounds, simStepMs: 0 },
      rounds: results as unknown as Record<string, unknown>[],
      figures: [
        pairedFigure({
          what: "pipeline drain vs render rate",
          unit: "per s",
          rows: results,
          isOurs: (r) => r.side === "pipeline",
          value: (r) => r.perS,
          names: ["pipeline", "render"],
          target: { op: ">=", value: 2 },
        }),
      ],
      problems: [],
      notes: [
        "render: N jobs through one worker process (concurrency C) on the simulated backend answering at once, no pipeline running",
        "pipeline: one pipeline process draining the N terminal events left in the outbox (relay → BullMQ billing → ledger fsync → usage counts)",
      ],
    };
  },
};

if (isMain(import.meta.url)) standalone(pipelineBench);
