// Bench 4 — utilisation: three simulated backends (own processes) with capacities 2, 4, 8 and a
// fixed step time (10 steps × 10 ms), our worker (concurrency ≥ Σ capacity) and a queue deep enough to
// keep them saturated. Utilisation = measured jobs/s ÷ Σ(capacity ÷ per-job time on the idle sim),
// the bound measured in the same round; each backend's share of completions vs its capacity share.
//   npx tsx bench/utilisation.ts [--rounds 3] [--window 8] [--concurrency 16]
import { performance } from "node:perf_hooks";
import { startCluster, statusCounts } from "./lib/cluster.js";
import { isMain, option, standalone, type BenchContext, type BenchDef } from "./lib/harness.js";
import { sleep, waitUntil } from "./lib/proc.js";
import { figure, fmt, median, table } from "./lib/report.js";

const CAPACITIES = [2, 4, 8] as const;

interface Round {
  round: number;
  idleServiceMs: number[];
  boundJobsPerS: number;
  jobsPerS: number;
  utilisation: number;
  completedByBackend: number[];
  shareByBackend: number[];
  peakActive: number[];
  rejectedBusy: number;
  queuedAtEnd: number;
  statuses: Record<string, number>;
  /** Median begin→finish time of the attempts that completed in the window (worker clock), ms. */
  attemptMs: number;
  /** Median time the sim reported for those attempts (gpu_ms), ms. */
  simMs: number;
  /** Σ capacity ÷ rate − attemptMs: how long a slot sat idle between two attempts, ms. */
  slotGapMs: number;
}

/**
 * begin→finish times (ms) of the jobs that completed between `from` and `to` (epoch ms), and the
 * time the sim itself reported for them (gpu_ms: from its admission of the call to its answer).
 */
async function attemptTimes(ctx: BenchContext, ids: readonly string[], from: number, to: number) {
  const attempt: number[] = [];
  const sim: number[] = [];
  for (let i = 0; i < ids.length; i += 1000) {
    const pipe = ctx.redis.client.pipeline();
    for (const id of ids.slice(i, i + 1000))
      pipe.hmget(`{bench}:job:${id}`, "started", "completed", "gpu_ms");
    for (const [err, v] of (await pipe.exec()) ?? []) {
      if (err) throw err;
      const [started, completed, gpu] = (v as (string | null)[]).map(Number);
      if (completed! >= from && completed! <= to && started! > 0) {
        attempt.push(completed! - started!);
        sim.push(gpu!);
      }
    }
  }
  return { attemptMs: median(attempt), simMs: median(sim) };
}

export const utilisationBench: BenchDef = {
  name: "utilisation",
  title: "Bench 4 — utilisation of 3 backends (capacities 2, 4, 8; 10 steps × 10 ms)",
  async run(ctx: BenchContext) {
    const rounds = option("rounds", "BENCH_ROUNDS", 3);
    const windowS = option("window", "BENCH_WINDOW_S", 8);
    const warmS = option("warm", "BENCH_WARM_S", 3);
    const concurrency = option("concurrency", "BENCH_CONCURRENCY", 16);
    const stepMs = 10;
    const steps = 10;
    const cluster = await startCluster(ctx, {
      capacities: CAPACITIES,
      stepMs,
      steps,
      concurrency,
      healthIntervalMs: 500,
      streaming: false,
    });
    const capTotal = CAPACITIES.reduce((a, b) => a + b, 0);
    const results: Round[] = [];
    const problems: string[] = [];
    try {
      for (let r = 1; r <= rounds; r++) {
        await ctx.redis.flush();
        await Promise.all(cluster.sims.map((s) => s.resetStats()));
        const idle = await cluster.idleServiceMs();
        const bound = CAPACITIES.reduce((sum, cap, i) => sum + cap / (idle[i]! / 1000), 0);
        const jobs = Math.ceil(bound * (warmS + windowS + 10));
        const ids = await cluster.admitter.admit(jobs);
        ctx.log(
          `round ${r}: idle service ${idle.map((t) => fmt(t, 1)).join(" / ")} ms → bound ${fmt(bound, 1)} jobs/s; ${jobs} jobs queued`,
        );
        await Promise.all(cluster.sims.map((s) => s.resetStats()));
        const worker = await cluster.startWorker(`worker-${r}`);
        await waitUntil("first completion", async () => (await cluster.done()) > 0, 30_000, 20, [worker]);
        await sleep(warmS * 1000);
        const before = await Promise.all(cluster.sims.map((s) => s.stats()));
        const t0 = performance.now();
        const wall0 = Date.now();
        await sleep(windowS * 1000);
        const after = await Promise.all(cluster.sims.map((s) => s.stats()));
        const elapsedS = (performance.now() - t0) / 1000;
        const wall1 = Date.now();
        const queuedAtEnd = await ctx.redis.client.zcard("{bench}:q");
        await worker.stop();
        const completed = after.map((a, i) => a.completed - before[i]!.completed);
        const total = completed.reduce((a, b) => a + b, 0);
        const { attemptMs, simMs } = await attemptTimes(ctx, ids, wall0, wall1);
        const row: Round = {
          round: r,
          idleServiceMs: idle,
          boundJobsPerS: bound,
          jobsPerS: total / elapsedS,
          utilisation: total / elapsedS / bound,
          completedByBackend: completed,
          shareByBackend: completed.map((c) => c / total),
          peakActive: after.map((a) => a.peak_active),
          rejectedBusy: after.reduce((s, a) => s + a.rejected_busy, 0),
          queuedAtEnd,
          statuses: await statusCounts(ctx, ids),
          attemptMs,
          simMs,
          slotGapMs: (capTotal / (total / elapsedS)) * 1000 - attemptMs,
        };
        results.push(row);
        ctx.log(
          `round ${r}: ${fmt(row.jobsPerS, 1)} jobs/s = ${fmt(row.utilisation * 100, 1)}% of bound; by backend ${completed.join(" / ")}; peak active ${row.peakActive.join(" / ")}; attempt ${fmt(attemptMs, 1)} ms (sim ${fmt(simMs, 1)}), slot gap ${fmt(row.slotGapMs, 1)} ms`,
        );
        if (queuedAtEnd === 0) problems.push(`round ${r}: the queue ran dry inside the window`);
        if (row.rejectedBusy > 0) problems.push(`round ${r}: sims answered 503 ${row.rejectedBusy} times`);
        if ((row.statuses.error ?? 0) > 0)
          problems.push(`round ${r}: ${row.statuses.error} jobs ended in error`);
      }
    } finally {
      await cluster.close();
    }

    console.log(
      "\n" +
        table(
          [
            "round",
            "idle ms/job (2/4/8)",
            "bound jobs/s",
            "jobs/s",
            "utilisation",
            "completed (2/4/8)",
            "peak active",
            "sim ms",
            "attempt ms",
            "slot gap ms",
          ],
          results.map((r) => [
            String(r.round),
            r.idleServiceMs.map((t) => fmt(t, 1)).join(" / "),
            fmt(r.boundJobsPerS, 1),
            fmt(r.jobsPerS, 1),
            `${fmt(r.utilisation * 100, 1)}%`,
            r.completedByBackend.join(" / "),
            r.peakActive.join(" / "),
            fmt(r.simMs, 1),
            fmt(r.attemptMs, 1),
            fmt(r.slotGapMs, 1),
          ]),
        ),
    );
    const shares = CAPACITIES.map((cap, i) => ({
      backend: `gpu-${i} (capacity ${cap})`,
      capacityShare: cap / capTotal,
      measuredShare: median(results.map((r) => r.shareByBackend[i]!)),
    }));
    console.log(
      "\n" +
        table(
          ["backend", "capacity share", "completion share (median)"],
          shares.map((s) => [
            s.backend,
            `${fmt(s.capacityShare * 100, 1)}%`,
            `${fmt(s.measuredShare * 100, 1)}%`,
          ]),
        ),
    );
    const ours = median(results.map((r) => r.jobsPerS));
    const bound = median(results.map((r) => r.boundJobsPerS));
    const util = median(results.map((r) => r.utilisation));
    return {
      params: {
        capacities: CAPACITIES,
        stepMs,
        steps,
        concurrency,
        windowS,
        warmS,
        rounds,
        streaming: false,
      },
      rounds: [...results.map((r) => ({ ...r })), { shares }],
      figures: [
        figure({
          what: "utilisation (jobs/s vs Σ cap/idle time)",
          unit: "jobs/s",
          ours,
          bound,
          ratioOf: "measured/bound",
          ratio: util,
          pairedRatios: results.map((r) => r.utilisation),
          ratioOfMedians: ours / bound,
          target: { op: ">=", value: 0.9 },
        }),
        ...shares.map((s) =>
          figure({
            what: `share of ${s.backend}`,
            unit: "%",
            ours: s.measuredShare * 100,
            bound: s.capacityShare * 100,
            ratioOf: "share/capacity share",
            ratio: s.measuredShare / s.capacityShare,
          }),
        ),
      ],
      valid: problems.length === 0,
      problems,
      notes: [
        "bound per round = Σ capacity_i / idle per-job time_i, the idle time measured on each sim just before the worker starts (sequential calls, median)",
        "rate = completions counted by the sims over the window, after the first completion + warm-up",
        "utilisation ratio is the median of the per-round ratios",
        "sim ms = the sim's own time per job under load (gpu_ms); attempt ms = begin→finish inside the worker (median); slot gap = Σ capacity ÷ rate − attempt ms, the time a backend slot waits between two attempts (finish → dispatch → BullMQ → begin)",
      ],
    };
  },
};

if (isMain(import.meta.url)) standalone(utilisationBench);
