// Bench — load curve: throughput and p99 latency of POST /queue against the offered load, ours
// (`start --roles api`) and the raw bound (a bare route doing only BullMQ's `queue.add`), each offered
// the same fixed request rates (autocannon's overall rate, 32 connections). Writes the chart as SVG
// to bench/results/load-curve.svg and docs/images/load-curve.svg (the README shows it).
//   npx tsx bench/load-curve.ts [--seconds 3] [--connections 32] [--rates 500,1000,2000,3000,4000,6000,8000]
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import autocannon from "autocannon";
import { TYPICAL_BODY } from "./lib/admit.js";
import { mintToken, startApi, writeBenchTiers } from "./lib/gateway.js";
import { isMain, options, sidesOf, standalone, textOption, type BenchDef } from "./lib/harness.js";
import { PROJECT_ROOT } from "./lib/proc.js";
import { startRawEnqueue } from "./lib/raw.js";
import { fmt, printTable } from "./lib/report.js";
import { lineChartsSvg } from "./lib/svg-chart.js";

const PREFIX = "{curve}";
const RAW_PREFIX = "rawc";
const DEFAULT_RATES = [500, 1_000, 2_000, 3_000, 4_000, 6_000, 8_000];

interface Point {
  readonly side: "ours" | "raw";
  readonly offered: number;
  readonly reqPerS: number;
  readonly p50Ms: number;
  readonly p99Ms: number;
  readonly non2xx: number;
  readonly errors: number;
}

async function offer(url: string, token: string, rate: number, seconds: number, connections: number) {
  const res = await autocannon({
    url: `${url}/queue`,
    method: "POST",
    connections,
    pipelining: 1,
    duration: seconds,
    overallRate: rate,
    headers: { "content-type": "application/json", authorization: `Bearer ${token}` },
    body: JSON.stringify(TYPICAL_BODY),
  });
  return {
    reqPerS: res["2xx"] / res.duration,
    p50Ms: res.latency.p50,
    p99Ms: res.latency.p99,
    non2xx: res.non2xx,
    errors: res.errors + res.timeouts,
  };
}

export const loadCurveBench: BenchDef = {
  name: "load-curve",
  title: "Bench — load curve (POST /queue at fixed offered rates, 32 connections)",
  async run(ctx) {
    const { seconds, connections } = options({ seconds: 3, connections: 32 });
    const ratesText = textOption("rates");
    const rates = ratesText ? ratesText.split(",").map(Number) : DEFAULT_RATES;
    if (rates.some((r) => !Number.isInteger(r) || r < 1)) throw new Error("--rates: positive integers");
    const api = await startApi({
      redisUrl: ctx.redis.url,
      prefix: PREFIX,
      dataDir: join(ctx.dir, "api"),
      logDir: ctx.logDir,
      extra: { TIERS_FILE: writeBenchTiers(ctx.dir) },
    });
    const raw = await startRawEnqueue({
      redisUrl: ctx.redis.url,
      prefix: RAW_PREFIX,
      dir: ctx.dir,
      logDir: ctx.logDir,
    });
    const token = await mintToken("bench-curve", "pro");
    ctx.log("warm-up (2 s each, discarded)");
    await offer(api.url, token, 2_000, 2, connections);
    await offer(raw.url, token, 2_000, 2, connections);

    const points: Point[] = [];
    for (const [i, rate] of rates.entries()) {
      for (const side of sidesOf(i + 1)) {
        await ctx.redis.flush();
        const r = await offer(side === "ours" ? api.url : raw.url, token, rate, seconds, connections);
        points.push({ side, offered: rate, ...r });
        ctx.log(`${side} offered ${rate}/s: ${fmt(r.reqPerS)} req/s, p50 ${r.p50Ms} ms, p99 ${r.p99Ms} ms`);
      }
    }
    const of = (side: Point["side"]) => points.filter((p) => p.side === side);
    printTable(
      ["offered req/s", "ours req/s", "raw req/s", "ours p99 ms", "raw p99 ms"],
      rates.map((rate) => {
        const o = of("ours").find((p) => p.offered === rate)!;
        const r = of("raw").find((p) => p.offered === rate)!;
        return [fmt(rate), fmt(o.reqPerS), fmt(r.reqPerS), fmt(o.p99Ms, 1), fmt(r.p99Ms, 1)];
      }),
    );
    const svg = lineChartsSvg(
      [
        {
          title: "Throughput against offered load",
          xLabel: "offered load (requests/s)",
          yLabel: "answered 202 (requests/s)",
          series: [
            { name: "offered", color: "#999", dashed: true, points: rates.map((r) => [r, r] as const) },
            {
              name: "raw bound (queue.add)",
              color: "#1f77b4",
              points: of("raw").map((p) => [p.offered, p.reqPerS] as const),
            },
            {
              name: "render-gateway",
              color: "#d62728",
              points: of("ours").map((p) => [p.offered, p.reqPerS] as const),
            },
          ],
        },
        {
          title: "p99 latency against offered load",
          xLabel: "offered load (requests/s)",
          yLabel: "p99 latency (ms)",
          series: [
            {
              name: "raw bound (queue.add)",
              color: "#1f77b4",
              points: of("raw").map((p) => [p.offered, p.p99Ms] as const),
            },
            {
              name: "render-gateway",
              color: "#d62728",
              points: of("ours").map((p) => [p.offered, p.p99Ms] as const),
            },
          ],
        },
      ],
      `POST /queue, ${connections} connections, ${seconds} s per point; npx tsx bench/load-curve.ts (${new Date().toISOString().slice(0, 10)})`,
    );
    mkdirSync(join(PROJECT_ROOT, "bench/results"), { recursive: true });
    writeFileSync(join(PROJECT_ROOT, "bench/results/load-curve.svg"), svg);
    writeFileSync(join(PROJECT_ROOT, "docs/images/load-curve.svg"), svg);
    ctx.log("chart written to bench/results/load-curve.svg and docs/images/load-curve.svg");

    // Headline: the highest offered rate each side still answered at ≥ 95 %.
    const sustained = (side: Point["side"]) =>
      Math.max(
        0,
        ...of(side)
          .filter((p) => p.reqPerS >= 0.95 * p.offered && p.non2xx === 0)
          .map((p) => p.offered),
      );
    const ours = sustained("ours");
    const bound = sustained("raw");
    const problems = points
      .filter((p) => p.non2xx > 0 || p.errors > 0)
      .map((p) => `${p.side} at ${p.offered}/s: ${p.non2xx} non-2xx, ${p.errors} errors`);
    return {
      params: { seconds, connections, rates },
      rounds: points.map((p) => ({ ...p })),
      figures: [
        {
          what: "highest offered rate answered at ≥ 95 %",
          unit: "req/s",
          ours,
          bound,
          ratioOf: "ours/raw",
          ratio: bound > 0 ? ours / bound : Number.NaN,
        },
      ],
      problems,
      notes: [
        "offered load: autocannon's overallRate across all connections (the load generator runs in this process)",
        "chart: bench/results/load-curve.svg (and docs/images/load-curve.svg)",
      ],
    };
  },
};

if (isMain(import.meta.url)) standalone(loadCurveBench);
