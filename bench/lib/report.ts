// Figures, tables and the JSON summaries of the benchmarks (bench/results/<name>.json).
import { execFileSync } from "node:child_process";
import { mkdirSync, writeFileSync } from "node:fs";
import { cpus, loadavg } from "node:os";
import { join } from "node:path";
import { format, resolveConfig } from "prettier";
import { GATEWAY_ROOT, PROJECT_ROOT } from "./proc.js";

export const NOISE_NOTE =
  "2-core machine: load generator, servers and Redis share the cores, so absolute figures are noisy " +
  "between runs; compare the ratios, each measured against its bound in the same run (interleaved rounds, medians).";

export function median(xs: readonly number[]): number {
  if (xs.length === 0) return Number.NaN;
  const s = [...xs].sort((a, b) => a - b);
  const m = Math.floor(s.length / 2);
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

/** Nearest-rank percentile (p in 0..100). */
export function percentile(xs: readonly number[], p: number): number {
  if (xs.length === 0) return Number.NaN;
  const s = [...xs].sort((a, b) => a - b);
  const rank = Math.min(s.length - 1, Math.max(0, Math.ceil((p / 100) * s.length) - 1));
  return s[rank]!;
}

interface Target {
  /** `>=`: the figure must reach the value; `<=`: it must stay below it. */
  readonly op: ">=" | "<=";
  readonly value: number;
}

/** One headline figure: ours against its bound, the ratio and the target it is held to. */
interface Figure {
  readonly what: string;
  readonly unit: string;
  readonly ours: number;
  readonly bound: number;
  /** How ratio is formed, e.g. "ours/raw". */
  readonly ratioOf: string;
  /**
   * The headline ratio: the median of the per-round ratios when rounds pair ours with its bound
   * back to back (robust to the machine's load drifting between rounds), else ratio of the medians.
   */
  readonly ratio: number;
  /** Per-round ratios (each from one interleaved pair), when there are pairs. */
  readonly pairedRatios?: readonly number[];
  /** ours ÷ bound of the medians (or bound ÷ ours, following ratioOf), for comparison. */
  readonly ratioOfMedians?: number;
  readonly target?: Target;
  readonly met?: boolean;
}

export function figure(f: Omit<Figure, "met">): Figure {
  if (!f.target) return f;
  const met = f.target.op === ">=" ? f.ratio >= f.target.value : f.ratio <= f.target.value;
  return { ...f, met };
}

/**
 * A figure of interleaved rounds, each round measuring ours and the bound back to back: `ours` and
 * `bound` are the medians of each side's rows, the ratio the median of the per-round ratios, ours ÷
 * bound (or bound ÷ ours with `inverse`, for figures where less is better).
 */
export function pairedFigure<T extends { round: number }>(o: {
  what: string;
  unit: string;
  rows: readonly T[];
  /** Our rows; the others are the bound's. */
  isOurs: (r: T) => boolean;
  value: (r: T) => number;
  /** The sides' names in `ratioOf`; default ours and raw. */
  names?: readonly [ours: string, bound: string];
  inverse?: boolean;
  target?: Target;
}): Figure {
  const ours = median(o.rows.filter(o.isOurs).map(o.value));
  const bound = median(o.rows.filter((r) => !o.isOurs(r)).map(o.value));
  const [a, b] = o.names ?? ["ours", "raw"];
  const top = o.inverse ? (r: T) => !o.isOurs(r) : o.isOurs;
  const pairedRatios: number[] = [];
  for (const x of o.rows.filter(top)) {
    const y = o.rows.find((r) => r.round === x.round && !top(r));
    if (y) pairedRatios.push(o.value(x) / o.value(y));
  }
  return figure({
    what: o.what,
    unit: o.unit,
    ours,
    bound,
    ratioOf: o.inverse ? `${b}/${a}` : `${a}/${b}`,
    ratio: median(pairedRatios),
    pairedRatios,
    ratioOfMedians: o.inverse ? bound / ours : ours / bound,
    ...(o.target ? { target: o.target } : {}),
  });
}

export interface BenchSummary {
  readonly name: string;
  readonly title: string;
  readonly startedAt: string;
  readonly durationS: number;
  readonly machine: {
    readonly cpus: number;
    readonly node: string;
    readonly loadavg1: number;
    /** The commit measured, with "+dirty" when src/ has uncommitted changes. */
    readonly commit: string;
  };
  readonly params: Record<string, unknown>;
  readonly rounds: readonly Record<string, unknown>[];
  readonly figures: readonly Figure[];
  /** False when a round had errors (non-2xx, failed jobs): the figures mean nothing then. */
  readonly valid: boolean;
  readonly problems: readonly string[];
  readonly notes: readonly string[];
}

/** The commit of the tree measured (read-only git calls), "+dirty" when src/ has changes. */
function commitOf(root: string): string {
  try {
    const sha = execFileSync("git", ["rev-parse", "--short", "HEAD"], { cwd: root, encoding: "utf8" }).trim();
    const dirty = execFileSync("git", ["status", "--porcelain", "--", "src"], {
      cwd: root,
      encoding: "utf8",
    });
    return dirty.trim() ? `${sha}+dirty` : sha;
  } catch {
    return "unknown";
  }
}

export function machine() {
  return {
    cpus: cpus().length,
    node: process.version,
    loadavg1: Math.round(loadavg()[0]! * 100) / 100,
    commit: commitOf(GATEWAY_ROOT),
  };
}

export function fmt(n: number, digits?: number): string {
  if (!Number.isFinite(n)) return String(n);
  const d = digits ?? (Math.abs(n) >= 100 ? 0 : Math.abs(n) >= 10 ? 1 : 2);
  return n.toLocaleString("en-US", { minimumFractionDigits: d, maximumFractionDigits: d });
}

export function table(headers: readonly string[], rows: readonly (readonly string[])[]): string {
  const widths = headers.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? "").length)));
  const line = (cells: readonly string[]) =>
    "| " + cells.map((c, i) => (i === 0 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join(" | ") + " |";
  const sep =
    "|" + widths.map((w, i) => (i === 0 ? "-".repeat(w + 2) : "-".repeat(w + 1) + ":")).join("|") + "|";
  return [line(headers), sep, ...rows.map(line)].join("\n");
}

/** A table on its own, after an empty line. */
export function printTable(headers: readonly string[], rows: readonly (readonly string[])[]): void {
  console.log(`\n${table(headers, rows)}`);
}

export function figuresTable(figures: readonly Figure[]): string {
  return table(
    ["figure", "ours", "bound", "ratio (median of rounds)", "per round", "of medians", "target", "met"],
    figures.map((f) => [
      `${f.what} (${f.unit})`,
      fmt(f.ours),
      fmt(f.bound),
      `${fmt(f.ratio, 3)} ${f.ratioOf}`,
      f.pairedRatios ? f.pairedRatios.map((r) => fmt(r, 2)).join(" ") : "-",
      f.ratioOfMedians === undefined ? "-" : fmt(f.ratioOfMedians, 2),
      f.target ? `${f.target.op} ${f.target.value}` : "-",
      f.met === undefined ? "-" : f.met ? "yes" : "NO",
    ]),
  );
}

/**
 * Writes bench/results/<name>.json, formatted by the project's prettier: the root .prettierignore
 * does not list bench/results/ (only bench/.gitignore does), so `npm run format:check` reads them.
 */
export async function writeSummary(s: BenchSummary): Promise<string> {
  const dir = join(PROJECT_ROOT, "bench", "results");
  mkdirSync(dir, { recursive: true });
  const file = join(dir, `${s.name}.json`);
  const options = (await resolveConfig(file)) ?? {};
  writeFileSync(file, await format(JSON.stringify(s, null, 2), { ...options, parser: "json" }));
  return file;
}

export function printSummary(s: BenchSummary, file: string): void {
  console.log(`\n${s.title} — medians`);
  console.log(figuresTable(s.figures));
  for (const f of s.figures) {
    if (f.target) {
      const rounds = f.pairedRatios ? ` [rounds: ${f.pairedRatios.map((r) => fmt(r, 2)).join(", ")}]` : "";
      const ofMedians =
        f.ratioOfMedians === undefined ? "" : `; ratio of medians ${fmt(f.ratioOfMedians, 2)}`;
      console.log(
        `ratio: ${f.what}: ${f.ratioOf} = ${fmt(f.ratio, 3)}${rounds}${ofMedians} (target ${f.target.op} ${f.target.value}: ${f.met ? "met" : "NOT met"})`,
      );
    }
  }
  if (!s.valid) console.log(`INVALID RUN: ${s.problems.join("; ")}`);
  for (const n of s.notes) console.log(`note: ${n}`);
  console.log(`summary written to ${file}`);
}
