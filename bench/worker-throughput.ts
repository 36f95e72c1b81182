// Bench 2 — worker throughput: N jobs through our worker role (concurrency C) against the simulated
// backend answering at once (SIM_STEP_MS=0, its own process), against the raw bound: a bare BullMQ
// worker with the same concurrency forwarding the same KServe v2 body to the same sim with undici.
// Jobs/s from the first start to the last completion; interleaved rounds.
//   npx tsx bench/worker-throughput.ts [--jobs 2000] [--concurrency 16] [--rounds 2]
import { join } from "node:path";
import { Queue } from "bullmq";
import { Redis } from "ioredis";
import { createAdmitter, workerBody } from "./lib/admit.js";
import { nodeArgs, startSim, startWorker, writeBackendsFile } from "./lib/gateway.js";
import { isMain, option, standalone, type BenchContext, type BenchDef } from "./lib/harness.js";
import { baseEnv, PROJECT_ROOT, spawnTs, waitUntil } from "./lib/proc.js";
import { figure, fmt, median, pairRatios, table } from "./lib/report.js";

const PREFIX = "{bench}";
const RAW_PREFIX = "raww";
const RAW_QUEUE = "raw-render";
const RESULT_KEY = "raw:result";

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
}

/** Start/completion times of our jobs, from the job hashes the scheduler's scripts wrote. */
async function ourTimes(redis: Redis, ids: readonly string[]) {
  const pipe = redis.pipeline();
  for (const id of ids) pipe.hmget(`${PREFIX}:job:${id}`, "status", "started", "completed");
  const res = (await pipe.exec()) ?? [];
  let first = Infinity;
  let last = 0;
  let completed = 0;
  let failed = 0;
  for (const [err, v] of res) {
    if (err) throw err;
    const [status, started, done] = v as (string | null)[];
    if (status === "complete") completed++;
    else failed++;
    if (started) first = Math.min(first, Number(started));
    if (done) last = Math.max(last, Number(done));
  }
  return { first, last, completed, failed };
}

export const workerBench: BenchDef = {
  name: "worker-throughput",
  title: "Bench 2 — worker throughput (sim at SIM_STEP_MS=0)",
  async run(ctx: BenchContext) {
    const jobs = option("jobs", "BENCH_JOBS", 2000);
    const concurrency = option("concurrency", "BENCH_CONCURRENCY", 16);
    const rounds = option("rounds", "BENCH_ROUNDS", 3);
    const redis = ctx.redis.client;

    const sim = await startSim({
      name: "sim",
      stepMs: 0,
      capacity: concurrency * 4,
      dataDir: join(ctx.dir, "sim"),
      logDir: ctx.logDir,
    });
    const backendsFile = writeBackendsFile(ctx.dir, [
      { id: "sim", url: sim.url, capacity: concurrency * 2, streaming: false },
    ]);
    const admitter = createAdmitter({
      redis,
      prefix: PREFIX,
      dataDir: join(ctx.dir, "admit"),
      body: workerBody(),
      customerId: "bench-worker",
    });
    const rawConnection = new Redis(ctx.redis.url, { maxRetriesPerRequest: null });
    rawConnection.on("error", () => undefined);
    const rawQueue = new Queue(RAW_QUEUE, { connection: rawConnection, prefix: RAW_PREFIX });
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

    const results: Round[] = [];
    const runOurs = async (r: number) => {
      await ctx.redis.flush();
      await sim.resetStats();
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
      await worker.stop();
      const t = await ourTimes(redis, ids);
      const s = await sim.stats();
      return {
        side: "ours" as const,
        round: r,
        jobs,
        completed: t.completed,
        failed: t.failed,
        spanMs: t.last - t.first,
        jobsPerS: (t.completed / (t.last - t.first)) * 1000,
        simCompleted: s.completed,
        simRejected: s.rejected_busy + s.rejected_bad_request,
        redisCpuUs: cost.cpuUsPerUnit,
        redisCommands: cost.byCommand,
        redisUsec: cost.usecByCommand,
      };
    };
    const runRaw = async (r: number) => {
      await ctx.redis.flush();
      await sim.resetStats();
      const batch = 500;
      for (let i = 0; i < jobs; i += batch) {
        const n = Math.min(batch, jobs - i);
        const items = await Promise.all(
          Array.from({ length: n }, async (_, k) => ({
            name: "render",
            data: await admitter.inferBody(`raw_${r}_${i + k}`),
          })),
        );
        await rawQueue.addBulk(items);
      }
      await ctx.redis.markCost();
      const child = spawnTs({
        name: `raw-worker-${r}`,
        file: join(PROJECT_ROOT, "bench/raw/worker.ts"),
        env: baseEnv({
          REDIS_URL: ctx.redis.url,
          RAW_PREFIX,
          QUEUE: RAW_QUEUE,
          SIM_URL: sim.url,
          CONCURRENCY: String(concurrency),
          JOBS: String(jobs),
          RESULT_KEY,
        }),
        logDir: ctx.logDir,
        nodeArgs: nodeArgs(`raw-worker-${r}`),
      });
      const raw = await waitUntil(
        "raw jobs to finish",
        async () => (await redis.get(RESULT_KEY)) ?? undefined,
        120_000,
        20,
        [child],
      );
      const cost = await ctx.redis.costPer(jobs);
      await child.stop();
      const t = JSON.parse(raw) as { first: number; last: number; done: number; failed: number };
      const s = await sim.stats();
      return {
        side: "raw" as const,
        round: r,
        jobs,
        completed: t.done - t.failed,
        failed: t.failed,
        spanMs: t.last - t.first,
        jobsPerS: ((t.done - t.failed) / (t.last - t.first)) * 1000,
        simCompleted: s.completed,
        simRejected: s.rejected_busy + s.rejected_bad_request,
        redisCpuUs: cost.cpuUsPerUnit,
        redisCommands: cost.byCommand,
      };
    };

    try {
      for (let r = 1; r <= rounds; r++) {
        // A B, B A, A B…: neither side always runs right after the other.
        for (const side of r % 2 ? (["ours", "raw"] as const) : (["raw", "ours"] as const)) {
          const row = side === "ours" ? await runOurs(r) : await runRaw(r);
          results.push(row);
          ctx.log(
            `round ${r} ${side}: ${fmt(row.jobsPerS)} jobs/s (${row.completed}/${jobs} in ${row.spanMs} ms, sim completed ${row.simCompleted}, rejected ${row.simRejected}; Redis CPU ${fmt(row.redisCpuUs)} µs/job)`,
          );
        }
      }
    } finally {
      await rawQueue.close();
      rawConnection.disconnect();
      await sim.close();
    }

    const problems: string[] = [];
    for (const r of results) {
      if (r.failed > 0 || r.completed !== jobs)
        problems.push(`round ${r.round} ${r.side}: ${r.failed} jobs not complete`);
      if (r.simRejected > 0) problems.push(`round ${r.round} ${r.side}: sim rejected ${r.simRejected} calls`);
    }
    console.log(
      "\n" +
        table(
          [
            "round",
            "side",
            "jobs/s",
            "span ms",
            "complete",
            "sim completed",
            "sim rejected",
            "Redis CPU µs/job",
          ],
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
        ),
    );
    const med = (side: Round["side"], k: "jobsPerS" | "redisCpuUs" = "jobsPerS") =>
      median(results.filter((r) => r.side === side).map((r) => r[k]));
    const ours = med("ours");
    const raw = med("raw");
    return {
      params: { jobs, concurrency, rounds, simStepMs: 0, streaming: false, imageBytes, body: workerBody() },
      rounds: results as unknown as Record<string, unknown>[],
      figures: [
        figure({
          what: "worker throughput",
          unit: "jobs/s",
          ours,
          bound: raw,
          ratioOf: "ours/raw",
          ratio: median(
            pairRatios(
              results,
              (r) => r.side === "ours",
              (r) => r.jobsPerS,
            ),
          ),
          pairedRatios: pairRatios(
            results,
            (r) => r.side === "ours",
            (r) => r.jobsPerS,
          ),
          ratioOfMedians: ours / raw,
          target: { op: ">=", value: 0.8 },
        }),
        figure({
          what: "Redis CPU per job",
          unit: "µs",
          ours: med("ours", "redisCpuUs"),
          bound: med("raw", "redisCpuUs"),
          ratioOf: "raw/ours",
          ratio: median(
            pairRatios(
              results,
              (r) => r.side === "raw",
              (r) => r.redisCpuUs,
            ),
          ),
          pairedRatios: pairRatios(
            results,
            (r) => r.side === "raw",
            (r) => r.redisCpuUs,
          ),
          ratioOfMedians: med("raw", "redisCpuUs") / med("ours", "redisCpuUs"),
        }),
      ],
      valid: problems.length === 0,
      problems,
      notes: [
        "ours: jobs admitted first (same record as POST /queue), then `start --roles worker` (dispatch Lua → BullMQ attempt job → undici infer → CAS put → finish Lua, which starts the next attempts)",
        "raw: addBulk first, then a bare BullMQ worker (same concurrency) → undici infer → JSON parse → complete",
        "span = first start to last completion; process start-up is outside it for both",
        `fixed seed and prompt: the sim serves one cached ${imageBytes}-byte PNG, base64 in JSON`,
      ],
    };
  },
};

if (isMain(import.meta.url)) standalone(workerBench);
