// Summarises V8 .cpuprofile files (from `node --cpu-prof`, e.g. BENCH_CPU_PROF=<dir> npm run bench):
// self time by package / source file, the hottest functions, and (with --callers NAME) who calls a
// function, as caller chains weighted by the function's self time.
//   npx tsx bench/tools/cpuprofile-top.ts <file.cpuprofile> [--top 25] [--callers writeUtf8String]
import { readFileSync } from "node:fs";
import { fmt, table } from "../lib/report.js";

interface Node {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  hitCount?: number;
  children?: number[];
}
interface Profile {
  nodes: Node[];
  startTime: number;
  endTime: number;
  samples?: number[];
}

/** Where a frame comes from: a package under node_modules, a file of ours, node internals, or V8. */
function groupOf(url: string, name: string): string {
  if (!url) return name.startsWith("(") ? name : "(native)";
  const nm = /node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(url);
  if (nm) return nm[1]!;
  const ours = /\/work\/[^/]+\/((?:src|bench)\/.*)$/.exec(url) ?? /((?:src|bench)\/[^?]*)/.exec(url);
  if (ours) return ours[1]!;
  if (url.startsWith("node:")) return url;
  return url;
}

function summarise(file: string, top: number, callersOf?: string): void {
  const p = JSON.parse(readFileSync(file, "utf8")) as Profile;
  const totalMs = (p.endTime - p.startTime) / 1000;
  const hits = p.nodes.reduce((s, n) => s + (n.hitCount ?? 0), 0);
  const msPerHit = hits > 0 ? totalMs / hits : 0;
  const byGroup = new Map<string, number>();
  const byFn = new Map<string, number>();
  for (const n of p.nodes) {
    const h = n.hitCount ?? 0;
    if (h === 0) continue;
    const g = groupOf(n.callFrame.url, n.callFrame.functionName);
    byGroup.set(g, (byGroup.get(g) ?? 0) + h);
    const fn = `${n.callFrame.functionName || "(anonymous)"} ${g}:${n.callFrame.lineNumber + 1}`;
    byFn.set(fn, (byFn.get(fn) ?? 0) + h);
  }
  const idle = byGroup.get("(idle)") ?? 0;
  const busy = hits - idle;
  const rows = (m: Map<string, number>) =>
    [...m.entries()]
      .filter(([k]) => k !== "(idle)" && !k.startsWith("(idle)"))
      .sort((a, b) => b[1] - a[1])
      .slice(0, top)
      .map(([k, h]) => [k, fmt(h * msPerHit, 0), `${fmt((h / busy) * 100, 1)}%`]);
  console.log(`\n${file}: ${fmt(totalMs, 0)} ms profiled, ${fmt((busy / hits) * 100, 1)}% busy`);
  console.log(table(["self time by package / file", "ms", "% of busy"], rows(byGroup)));
  console.log(table(["hottest functions (self)", "ms", "% of busy"], rows(byFn)));
  if (callersOf) {
    const parent = new Map<number, Node>();
    for (const n of p.nodes) for (const c of n.children ?? []) parent.set(c, n);
    const chains = new Map<string, number>();
    for (const n of p.nodes) {
      if (n.callFrame.functionName !== callersOf || !n.hitCount) continue;
      const names: string[] = [];
      let q = parent.get(n.id);
      while (q && names.length < 6) {
        const g = groupOf(q.callFrame.url, q.callFrame.functionName);
        names.push(`${q.callFrame.functionName || "(anon)"}@${g}`);
        q = parent.get(q.id);
      }
      const key = names.join(" < ");
      chains.set(key, (chains.get(key) ?? 0) + n.hitCount);
    }
    const list = [...chains.entries()].sort((a, b) => b[1] - a[1]).slice(0, top);
    console.log(`\ncallers of ${callersOf} (self ms, innermost first):`);
    for (const [k, h] of list) console.log(`${fmt(h * msPerHit, 0).padStart(7)} ms  ${k}`);
  }
}

const args = process.argv.slice(2);
const topIdx = args.indexOf("--top");
const top = topIdx >= 0 ? Number(args[topIdx + 1]) : 25;
const callersIdx = args.indexOf("--callers");
const callersOf = callersIdx >= 0 ? args[callersIdx + 1] : undefined;
const values = new Set([topIdx + 1, callersIdx + 1].filter((i) => i > 0));
for (const f of args.filter((a, i) => !a.startsWith("--") && !values.has(i))) summarise(f, top, callersOf);
