// `npm run bench [-- enqueue worker-throughput position utilisation recovery]`: runs the benchmarks
// one after the other (each with its own redis-server and processes), then prints every headline
// figure with its ratio and target. Never part of `npm test` (STYLE.md habit 13).
import { enqueueBench } from "./enqueue.js";
import { positionBench } from "./position.js";
import { recoveryBench } from "./recovery.js";
import { utilisationBench } from "./utilisation.js";
import { workerBench } from "./worker-throughput.js";
import { installSignalHandlers, runBench, type BenchDef } from "./lib/harness.js";
import { fmt, table, writeSummary, NOISE_NOTE, machine, type BenchSummary } from "./lib/report.js";

const ALL: readonly BenchDef[] = [enqueueBench, workerBench, positionBench, utilisationBench, recoveryBench];

async function main(): Promise<number> {
  installSignalHandlers();
  const names = process.argv.slice(2).filter((a) => !a.startsWith("--"));
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
  const rows: string[][] = [];
  for (const s of summaries) {
    for (const f of s.figures) {
      rows.push([
        s.name,
        `${f.what} (${f.unit})`,
        fmt(f.ours),
        fmt(f.bound),
        `${fmt(f.ratio, 3)} ${f.ratioOf}`,
        f.pairedRatios ? f.pairedRatios.map((r) => fmt(r, 2)).join(" ") : "-",
        f.target ? `${f.target.op} ${f.target.value}` : "-",
        !s.valid ? "INVALID" : f.met === undefined ? "-" : f.met ? "yes" : "NO",
      ]);
    }
  }
  console.log(table(["bench", "figure", "ours", "bound", "ratio", "per round", "target", "met"], rows));
  console.log(`note: ${NOISE_NOTE}`);
  for (const f of failures) console.log(`FAILED: ${f}`);
  for (const s of summaries.filter((x) => !x.valid))
    console.log(`INVALID: ${s.name}: ${s.problems.join("; ")}`);
  await writeSummary({
    name: "summary",
    title: "All benchmarks",
    startedAt: new Date(started).toISOString(),
    durationS: Math.round((Date.now() - started) / 100) / 10,
    machine: machine(),
    params: { benches: chosen.map((b) => b.name) },
    rounds: [],
    figures: summaries.flatMap((s) => s.figures.map((f) => ({ ...f, what: `${s.name}: ${f.what}` }))),
    valid: failures.length === 0 && summaries.every((s) => s.valid),
    problems: [...failures.map((f) => `${f} failed`), ...summaries.flatMap((s) => s.problems)],
    notes: [NOISE_NOTE],
  });
  return failures.length === 0 && summaries.every((s) => s.valid) ? 0 : 1;
}

main().then(
  (code) => process.exit(code),
  (err: unknown) => {
    console.error(err);
    process.exit(1);
  },
);
