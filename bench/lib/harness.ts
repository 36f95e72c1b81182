// Runs one benchmark: a temp dir, its own redis-server, the bench body, then every child stopped
// (also on errors and ctrl-c), the summary printed and written to bench/results/<name>.json.
import { mkdtempSync, rmSync, mkdirSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { GATEWAY_ROOT, PROJECT_ROOT, stopAll } from "./proc.js";
import { startRedis, type BenchRedis } from "./redis.js";
import { machine, NOISE_NOTE, printSummary, writeSummary, type BenchSummary } from "./report.js";

export interface BenchContext {
  /** Temp dir of this run (removed afterwards unless BENCH_KEEP=1 or the run failed). */
  readonly dir: string;
  /** Where child processes log. */
  readonly logDir: string;
  readonly redis: BenchRedis;
  log(message: string): void;
}

/** What a bench returns; the run is valid when `problems` is empty. */
type BenchResult = Pick<BenchSummary, "params" | "rounds" | "figures" | "problems" | "notes">;

export interface BenchDef {
  readonly name: string;
  readonly title: string;
  run(ctx: BenchContext): Promise<BenchResult>;
}

let signalsInstalled = false;

/** ctrl-c / SIGTERM: stop every child we started, then exit. */
function installSignalHandlers(): void {
  if (signalsInstalled) return;
  signalsInstalled = true;
  let count = 0;
  const onSignal = (sig: NodeJS.Signals) => {
    count++;
    if (count > 1) process.exit(130);
    console.error(`\n${sig}: stopping child processes…`);
    void stopAll().finally(() => process.exit(130));
  };
  process.on("SIGINT", onSignal);
  process.on("SIGTERM", onSignal);
}

export async function runBench(def: BenchDef): Promise<BenchSummary> {
  installSignalHandlers();
  const started = Date.now();
  const dir = mkdtempSync(join(tmpdir(), `rg-bench-${def.name}-`));
  const logDir = join(dir, "logs");
  mkdirSync(logDir, { recursive: true });
  const log = (m: string) => console.log(`[${def.name} ${((Date.now() - started) / 1000).toFixed(1)}s] ${m}`);
  const m = machine();
  log(`temp dir ${dir}; commit ${m.commit}; load average ${m.loadavg1}`);
  let redis: BenchRedis | undefined;
  let ok = false;
  try {
    redis = await startRedis(join(dir, "redis"));
    const result = await def.run({ dir, logDir, redis, log });
    const summary: BenchSummary = {
      name: def.name,
      title: def.title,
      startedAt: new Date(started).toISOString(),
      durationS: Math.round((Date.now() - started) / 100) / 10,
      machine: machine(),
      ...result,
      valid: result.problems.length === 0,
      notes: [
        NOISE_NOTE,
        ...(GATEWAY_ROOT === PROJECT_ROOT ? [] : [`gateway run from BENCH_GATEWAY_ROOT=${GATEWAY_ROOT}`]),
        ...result.notes,
      ],
    };
    const file = await writeSummary(summary);
    printSummary(summary, file);
    ok = summary.valid;
    return summary;
  } finally {
    await stopAll();
    await redis?.stop();
    if (ok && process.env.BENCH_KEEP !== "1") rmSync(dir, { recursive: true, force: true });
    else log(`kept ${dir} (logs under logs/)`);
  }
}

/** True when `moduleUrl` is the script node was started with. */
export function isMain(moduleUrl: string): boolean {
  const entry = process.argv[1];
  return entry !== undefined && resolve(entry) === fileURLToPath(moduleUrl);
}

/** Runs a benchmark as a script: exit code 0 when it ran validly. */
export function standalone(def: BenchDef): void {
  runBench(def).then(
    (s) => process.exit(s.valid ? 0 : 1),
    (err: unknown) => {
      console.error(err);
      process.exit(1);
    },
  );
}

/**
 * `--name value` / `--name=value` from argv, else the environment variable BENCH_NAME (`--warm-up`:
 * BENCH_WARM_UP), else undefined.
 */
export function textOption(name: string): string | undefined {
  const argv = process.argv;
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === `--${name}` && argv[i + 1] !== undefined) return argv[i + 1];
    if (a.startsWith(`--${name}=`)) return a.slice(name.length + 3);
  }
  return process.env[`BENCH_${name.toUpperCase().replaceAll("-", "_")}`] || undefined;
}

/**
 * A bench's numeric options, each read as textOption(name) with `name` the key in kebab case
 * (`healthInterval`: `--health-interval`, BENCH_HEALTH_INTERVAL), else its default.
 */
export function options<T extends Record<string, number>>(defaults: T): T {
  const out: Record<string, number> = {};
  for (const [key, def] of Object.entries(defaults)) {
    const name = key.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`);
    const text = textOption(name);
    const v = text === undefined ? def : Number(text);
    if (!Number.isFinite(v)) throw new Error(`--${name}: not a number: ${text}`);
    out[key] = v;
  }
  return out as T;
}

/** The order of the two sides in round `round` (1, 2, …), interleaved so that neither always runs first. */
export function sidesOf(round: number): readonly ("ours" | "raw")[] {
  return round % 2 ? ["ours", "raw"] : ["raw", "ours"];
}
