// Bench 4 — utilisation: three simulated backends (own processes) with capacities 2, 4, 8 and a
// fixed step time (10 steps × 10 ms), our worker (concurrency ≥ Σ capacity) and a queue deep enough to
// keep them saturated. Utilisation = measured jobs/s ÷ Σ(capacity ÷ per-job time on the idle sim),
// the bound measured in the same round; each backend's share of completions vs its capacity share.
//   npx tsx bench/utilisation.ts [--rounds 3] [--window 8] [--warm 3] [--concurrency 16]
import { performance } from "node:perf_hooks";
import { CAPACITY_TOTAL, CLUSTER, startCluster } from "./lib/cluster.js";
import { isMain, options, standalone, type BenchContext, type BenchDef } from "./lib/harness.js";
import { sleep } from "./lib/proc.js";
import { figure, fmt, median, printTable } from "./lib/report.js";

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
  /**
   * Median time from a job's start (its slot leased at dispatch) to its finish, of the jobs that
   * completed in the window (the job hash's `started` and `completed`, worker clock), ms.
   */
  attemptMs: number;
  /** Median time the sim reported for those attempts (gpu_ms), ms. */
  simMs: number;
  /** Σ capacity ÷ rate − attemptMs: how long a slot sat unleased between two attempts, ms. */
  slotGapMs: number;
}

export const utilisationBench: BenchDef = {
  name: "utilisation",
  title: "Bench 4 — utilisation of 3 backends (capacities 2, 4, 8; 10 steps × 10 ms)",
  async run(ctx: BenchContext) {
    const {
      rounds,
      window: windowS,
      warm: warmS,
      concurrency,
    } = options({
      rounds: 3,
      window: 8,
      warm: 3,
      concurrency: 16,
    });
    const cluster = await startCluster(ctx, { concurrency, healthIntervalMs: 500 });
    const results: Round[] = [];
    const problems: string[] = [];
    try {
      for (let r = 1; r <= rounds; r++) {
        await ctx.redis.flush();
        const { idleMs: idle, jobsPerS: bound } = await cluster.idleBound();
        const jobs = Math.ceil(bound * (warmS + windowS + 10));
        const ids = await cluster.admitter.admit(jobs);
        ctx.log(
          `round ${r}: idle service ${idle.map((t) => fmt(t, 1)).join(" / ")} ms → bound ${fmt(bound, 1)} jobs/s; ${jobs} jobs queued`,
        );
        await Promise.all(cluster.sims.map((s) => s.resetStats()));
        const worker = await cluster.startWarmWorker(`worker-${r}`, warmS);
        const before = await Promise.all(cluster.sims.map((s) => s.stats()));
        const t0 = performance.now();
        const wall0 = Date.now();
        await sleep(windowS * 1000);
        const after = await Promise.all(cluster.sims.map((s) => s.stats()));
        const elapsedS = (performance.now() - t0) / 1000;
        const wall1 = Date.now();
        const queuedAtEnd = await cluster.queued();
        await worker.stop();
        const completed = after.map((a, i) => a.completed - before[i]!.completed);
        const total = completed.reduce((a, b) => a + b, 0);
        // Attempt and sim times of the jobs that completed inside the window.
        const attempt: number[] = [];
        const sim: number[] = [];
        for (const [started, done, gpu] of await cluster.admitter.fields(ids, [
          "started",
          "completed",
          "gpu_ms",
        ])) {
          if (Number(done) >= wall0 && Number(done) <= wall1 && Number(started) > 0) {
            attempt.push(Number(done) - Number(started));
            sim.push(Number(gpu));
          }
        }
        const attemptMs = median(attempt);
        const simMs = median(sim);
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
          statuses: await cluster.statuses(ids),
          attemptMs,
          simMs,
          slotGapMs: (CAPACITY_TOTAL / (total / elapsedS)) * 1000 - attemptMs,
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

    printTable(
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
    );
    const shares = CLUSTER.capacities.map((cap, i) => ({
      backend: `gpu-${i} (capacity ${cap})`,
      capacityShare: cap / CAPACITY_TOTAL,
      measuredShare: median(results.map((r) => r.shareByBackend[i]!)),
    }));
    printTable(
      ["backend", "capacity share", "completion share (median)"],
      shares.map((s) => [
        s.backend,
        `${fmt(s.capacityShare * 100, 1)}%`,
        `${fmt(s.measuredShare * 100, 1)}%`,
      ]),
    );
    const ours = median(results.map((r) => r.jobsPerS));
    const bound = median(results.map((r) => r.boundJobsPerS));
    const util = median(results.map((r) => r.utilisation));
    return {
      params: { ...CLUSTER, concurrency, windowS, warmS, rounds },
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
      problems,
      notes: [
        "bound per round = Σ capacity_i / idle per-job time_i, the idle time measured on each sim just before the worker starts (sequential calls, median)",
        "rate = completions counted by the sims over the window, after the first completion + warm-up",
        "utilisation ratio is the median of the per-round ratios",
        "sim ms = the sim's own time per job under load (gpu_ms); attempt ms = start (slot leased at dispatch) → finish, as the job hash records them (median); slot gap = Σ capacity ÷ rate − attempt ms, the time a backend slot sits unleased between two attempts",
      ],
    };
  },
};

if (isMain(import.meta.url)) standalone(utilisationBench);
