// `npm run bench [-- enqueue enqueue-wait worker-throughput position utilisation recovery body-block
// fairness pipeline sync-latency load-curve analytics-insert audit-verify audit-append reconcile
// failover pools] [--rounds N …]`: runs
// the benchmarks one after the other (each with its own redis-server and processes), then prints
// every headline figure with its ratio and target. Never part of `npm test` (STYLE.md habit 13).
import { analyticsInsertBench } from "./analytics-insert.js";
import { auditAppendBench } from "./audit-append.js";
import { auditVerifyBench } from "./audit-verify.js";
import { bodyBlockBench } from "./body-block.js";
import { enqueueBench } from "./enqueue.js";
import { enqueueWaitBench } from "./enqueue-wait.js";
import { failoverBench } from "./failover.js";
import { poolsBench } from "./pools.js";
import { fairnessBench } from "./fairness.js";
import { loadCurveBench } from "./load-curve.js";
import { pipelineBench } from "./pipeline.js";
import { reconcileBench } from "./reconcile.js";
import { positionBench } from "./position.js";
import { recoveryBench } from "./recovery.js";
import { syncLatencyBench } from "./sync-latency.js";
import { utilisationBench } from "./utilisation.js";
import { workerBench } from "./worker-throughput.js";
import { runBench, type BenchDef } from "./lib/harness.js";
import { figuresTable, fmt, writeSummary, NOISE_NOTE, machine, type BenchSummary } from "./lib/report.js";

const ALL: readonly BenchDef[] = [
  enqueueBench,
  enqueueWaitBench,
  workerBench,
  positionBench,
  utilisationBench,
  recoveryBench,
  bodyBlockBench,
  fairnessBench,
  pipelineBench,
  syncLatencyBench,
  loadCurveBench,
  analyticsInsertBench,
  auditVerifyBench,
  auditAppendBench,
  reconcileBench,
  failoverBench,
  poolsBench,
];

/** The bench names among the arguments: neither an option (`--x`, `--x=v`) nor an option's value. */
function benchNames(args: readonly string[]): string[] {
  const names: string[] = [];
  for (let i = 0; i < args.length; i++) {
    const a = args[i]!;
    if (!a.startsWith("--")) names.push(a);
    else if (!a.includes("=")) i++;
  }
  return names;
}

async function main(): Promise<number> {
  const names = benchNames(process.argv.slice(2));
  const unknown = names.filter((n) => !ALL.some((b) => b.name === n));
  if (unknown.length > 0) {
    console.error(`unknown benchmark(s): ${unknown.join(", ")}; known: ${ALL.map((b) => b.name).join(", ")}`);
    return 2;
  }
  const chosen = names.length === 0 ? ALL : ALL.filter((b) => names.includes(b.name));
  const summaries: BenchSummary[] = [];
  const failures: string[] = [];
  const started = Date.now();
  for (const bench of chosen) {
    console.log(`\n=== ${bench.title}`);
    try {
      summaries.push(await runBench(bench));
    } catch (err) {
      failures.push(bench.name);
      console.error(`${bench.name} failed:`, err);
    }
  }

  console.log(`\n=== all benchmarks (${fmt((Date.now() - started) / 1000, 0)} s)`);
  const figures = summaries.flatMap((s) =>
    s.figures.map((f) => ({ ...f, what: `${s.name}: ${f.what}${s.valid ? "" : " (INVALID run)"}` })),
  );
  console.log(figuresTable(figures));
  console.log(`note: ${NOISE_NOTE}`);
  for (const f of failures) console.log(`FAILED: ${f}`);
  for (const s of summaries.filter((x) => !x.valid))
    console.log(`INVALID: ${s.name}: ${s.problems.join("; ")}`);
  const valid = failures.length === 0 && summaries.every((s) => s.valid);
  await writeSummary({
    name: "summary",
    title: "All benchmarks",
    startedAt: new Date(started).toISOString(),
    durationS: Math.round((Date.now() - started) / 100) / 10,
    machine: machine(),
    params: { benches: chosen.map((b) => b.name) },
    rounds: [],
    figures,
    valid,
    problems: [...failures.map((f) => `${f} failed`), ...summaries.flatMap((s) => s.problems)],
    notes: [NOISE_NOTE],
  });
  return valid ? 0 : 1;
}

main().then(
  (code) => process.exit(code),
  (err: unknown) => {
    console.error(err);
    process.exit(1);
  },
);
