// Bench 2 — worker throughput: N jobs through our worker role (concurrency C) against the simulated
// backend answering at once (SIM_STEP_MS=0, its own process), against the raw bound: a bare BullMQ
// worker with the same concurrency forwarding the same KServe v2 body to the same sim with undici.
// Jobs/s from the first start to the last completion; interleaved rounds.
//   npx tsx bench/worker-throughput.ts [--jobs 2000] [--concurrency 16] [--rounds 3]
import { join } from "node:path";
import { createAdmitter, workerBody } from "./lib/admit.js";
import { startWorker, startZeroStepSim } from "./lib/gateway.js";
import { isMain, options, sidesOf, standalone, type BenchContext, type BenchDef } from "./lib/harness.js";
import { waitUntil } from "./lib/proc.js";
import type { RedisCost } from "./lib/redis.js";
import { createRawWorkerBound, type RawResult } from "./lib/raw.js";
import { fmt, pairedFigure, printTable } from "./lib/report.js";

const PREFIX = "{bench}";

interface Round {
  side: "ours" | "raw";
  round: number;
  jobs: number;
  completed: number;
  failed: number;
  spanMs: number;
  jobsPerS: number;
  simCompleted: number;
  simRejected: number;
  /** Redis CPU per job while the worker ran (µs), and commands per job (inner script commands too). */
  redisCpuUs: number;
  redisCommands: Record<string, number>;
  /** Redis time per job by command (µs; a script's time includes the commands it runs). */
  redisUsec: Record<string, number>;
}

export const workerBench: BenchDef = {
  name: "worker-throughput",
  title: "Bench 2 — worker throughput (sim at SIM_STEP_MS=0)",
  async run(ctx: BenchContext) {
    const { jobs, concurrency, rounds } = options({ jobs: 2000, concurrency: 16, rounds: 3 });
    const redis = ctx.redis.client;

    const { sim, backendsFile } = await startZeroStepSim(ctx.dir, ctx.logDir, concurrency);
    const admitter = createAdmitter({
      redis,
      prefix: PREFIX,
      dataDir: join(ctx.dir, "admit"),
      body: workerBody(),
      customerId: "bench-worker",
    });
    const raw = createRawWorkerBound({
      redisUrl: ctx.redis.url,
      redis,
      simUrl: sim.url,
      concurrency,
      admitter,
      logDir: ctx.logDir,
    });
    // One call so the sim renders (and caches) the image before anything is timed.
    const probe = await fetch(`${sim.url}/v2/models/flux-schnell/infer`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify(await admitter.inferBody("warm")),
    });
    const answer = (await probe.json()) as { outputs?: { data?: string[] }[] };
    const imageBytes = Buffer.from(answer.outputs?.[0]?.data?.[0] ?? "", "base64").length;
    if (probe.status !== 200 || imageBytes === 0) throw new Error(`sim probe failed: ${probe.status}`);
    ctx.log(`sim ${sim.url} (pid ${sim.child.pid}); image ${imageBytes} bytes per answer`);

    /** The round's row, from the Redis cost read as the last job finished and the times of the jobs. */
    const row = async (side: Round["side"], round: number, cost: RedisCost, t: RawResult): Promise<Round> => {
      const s = await sim.stats();
      const completed = t.done - t.failed;
      return {
        side,
        round,
        jobs,
        completed,
        failed: t.failed,
        spanMs: t.last - t.first,
        jobsPerS: (completed / (t.last - t.first)) * 1000,
        simCompleted: s.completed,
        simRejected: s.rejected_busy + s.rejected_bad_request,
        redisCpuUs: cost.cpuUsPerUnit,
        redisCommands: cost.byCommand,
        redisUsec: cost.usecByCommand,
      };
    };
    const runOurs = async (r: number) => {
      const ids = await admitter.admit(jobs);
      await ctx.redis.markCost();
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
        "our jobs to finish",
        async () => (await redis.zcard(`${PREFIX}:done`)) >= jobs,
        120_000,
        20,
        [worker],
      );
      const cost = await ctx.redis.costPer(jobs);
      // Start and completion times from the job hashes the scheduler's scripts wrote.
      const t = { first: Infinity, last: 0, done: 0, failed: 0 };
      for (const [status, started, completed] of await admitter.fields(ids, [
        "status",
        "started",
        "completed",
      ])) {
        t.done++;
        if (status !== "complete") t.failed++;
        if (started) t.first = Math.min(t.first, Number(started));
        if (completed) t.last = Math.max(t.last, Number(completed));
      }
      await worker.stop();
      return row("ours", r, cost, t);
    };
    const runRaw = async (r: number) => {
      await raw.fill(jobs, String(r));
      await ctx.redis.markCost();
      const { child, result } = await raw.run(`raw-worker-${r}`, jobs);
      const cost = await ctx.redis.costPer(jobs);
      await child.stop();
      return row("raw", r, cost, result);
    };

    const results: Round[] = [];
    try {
      for (let r = 1; r <= rounds; r++) {
        for (const side of sidesOf(r)) {
          await ctx.redis.flush();
          await sim.resetStats();
          const row = side === "ours" ? await runOurs(r) : await runRaw(r);
          results.push(row);
          ctx.log(
            `round ${r} ${side}: ${fmt(row.jobsPerS)} jobs/s (${row.completed}/${jobs} in ${row.spanMs} ms, sim completed ${row.simCompleted}, rejected ${row.simRejected}; Redis CPU ${fmt(row.redisCpuUs)} µs/job)`,
          );
        }
      }
    } finally {
      await raw.close();
      await sim.close();
    }

    const problems: string[] = [];
    for (const r of results) {
      if (r.failed > 0 || r.completed !== jobs)
        problems.push(`round ${r.round} ${r.side}: ${r.failed} jobs not complete`);
      if (r.simRejected > 0) problems.push(`round ${r.round} ${r.side}: sim rejected ${r.simRejected} calls`);
    }
    printTable(
      ["round", "side", "jobs/s", "span ms", "complete", "sim completed", "sim rejected", "Redis CPU µs/job"],
      results.map((r) => [
        String(r.round),
        r.side,
        fmt(r.jobsPerS),
        String(r.spanMs),
        String(r.completed),
        String(r.simCompleted),
        String(r.simRejected),
        fmt(r.redisCpuUs),
      ]),
    );
    const isOurs = (r: Round) => r.side === "ours";
    return {
      params: { jobs, concurrency, rounds, simStepMs: 0, streaming: false, imageBytes, body: workerBody() },
      rounds: results as unknown as Record<string, unknown>[],
      figures: [
        pairedFigure({
          what: "worker throughput",
          unit: "jobs/s",
          rows: results,
          isOurs,
          value: (r) => r.jobsPerS,
          target: { op: ">=", value: 0.85 },
        }),
        pairedFigure({
          what: "Redis CPU per job",
          unit: "µs",
          rows: results,
          isOurs,
          value: (r) => r.redisCpuUs,
          inverse: true,
        }),
      ],
      problems,
      notes: [
        "ours: jobs admitted first (same record as POST /queue), then `start --roles worker` (dispatch Lua → BullMQ attempt job → undici infer → CAS put → finish Lua, which starts the slot's next attempt; it runs in the same slot, chained)",
        "raw: addBulk first, then a bare BullMQ worker (same concurrency) → undici infer → JSON parse → complete",
        "span = first start to last completion; process start-up is outside it for both",
        `fixed seed and prompt: the sim serves one cached ${imageBytes}-byte PNG, base64 in JSON`,
      ],
    };
  },
};

if (isMain(import.meta.url)) standalone(workerBench);
