// Bench 1 — enqueue: POST /queue on the real API (role api only, no workers: the queue just grows)
// against the raw bound, a bare Hono route that only does a prioritized BullMQ `queue.add` and
// answers 202. 32 connections, the same valid JWT on every request, interleaved rounds. The load
// generator is wrk when it is installed (C, one thread: it leaves the cores to the servers), else
// autocannon (Node, in this process).
//   npx tsx bench/enqueue.ts [--rounds 3] [--seconds 5] [--connections 32] [--tool wrk|autocannon]
import { execFileSync, spawn } from "node:child_process";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import autocannon from "autocannon";
import { TYPICAL_BODY } from "./lib/admit.js";
import { mintToken, nodeArgs, startApi, writeBenchTiers } from "./lib/gateway.js";
import { isMain, options, sidesOf, standalone, textOption, type BenchDef } from "./lib/harness.js";
import { baseEnv, processCpuSeconds, spawnTs, PROJECT_ROOT, waitForFile } from "./lib/proc.js";
import { fmt, pairedFigure, printTable } from "./lib/report.js";

const PREFIX = "{bench}";
const RAW_PREFIX = "rawq";

/** What a load run gives, whichever tool ran it. */
interface LoadResult {
  reqPerS: number;
  p50Ms: number;
  p99Ms: number;
  requests: number;
  /** Requests sent (answered or still in flight when the run stopped). */
  sent: number;
  accepted202: number;
  non2xx: number;
  errors: number;
  timeouts: number;
}

interface Round extends LoadResult {
  side: "ours" | "raw";
  round: number;
  storedJobs: number;
  /** Redis CPU per accepted request (µs), and commands per request (inner script commands too). */
  redisCpuUs: number;
  /** CPU of the server process (ours: the api role; raw: the bare route) per accepted request, µs. */
  serverCpuUs: number;
  redisCommands: Record<string, number>;
}

function wrkAvailable(): boolean {
  try {
    execFileSync("wrk", ["--version"], { stdio: "ignore" });
    return true;
  } catch (err) {
    // wrk --version exits 1 after printing its version
    return (err as { status?: number }).status === 1;
  }
}

const ms = (v: string, unit: string) => Number(v) * (unit === "us" ? 0.001 : unit === "s" ? 1000 : 1);

async function wrk(
  dir: string,
  url: string,
  token: string,
  seconds: number,
  connections: number,
): Promise<LoadResult> {
  const script = join(dir, "post.lua");
  writeFileSync(
    script,
    [
      'wrk.method = "POST"',
      `wrk.body = ${JSON.stringify(JSON.stringify(TYPICAL_BODY))}`,
      'wrk.headers["content-type"] = "application/json"',
      `wrk.headers["authorization"] = "Bearer ${token}"`,
    ].join("\n"),
  );
  const args = ["-t1", `-c${connections}`, `-d${seconds}s`, "--latency", "-s", script, `${url}/queue`];
  const out = await new Promise<string>((resolve, reject) => {
    const child = spawn("wrk", args, { stdio: ["ignore", "pipe", "pipe"] });
    let text = "";
    child.stdout.on("data", (d: Buffer) => (text += d.toString()));
    child.stderr.on("data", (d: Buffer) => (text += d.toString()));
    child.on("error", reject);
    child.on("exit", (code) =>
      code === 0 ? resolve(text) : reject(new Error(`wrk exited ${code}: ${text}`)),
    );
  });
  const num = (re: RegExp) => Number(re.exec(out)?.[1] ?? 0);
  const lat = (pct: string) => {
    const m = new RegExp(`^\\s+${pct}%\\s+([\\d.]+)(us|ms|s)`, "m").exec(out);
    return m ? ms(m[1]!, m[2]!) : 0;
  };
  const total = num(/(\d+) requests in/);
  const non2xx = num(/Non-2xx or 3xx responses: (\d+)/);
  const sock = /Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/.exec(out);
  const errors = sock ? Number(sock[1]) + Number(sock[2]) + Number(sock[3]) : 0;
  const accepted = total - non2xx;
  return {
    reqPerS: accepted / seconds,
    p50Ms: lat("50"),
    p99Ms: lat("99"),
    requests: total,
    sent: total,
    accepted202: accepted,
    non2xx,
    errors,
    timeouts: sock ? Number(sock[4]) : 0,
  };
}

async function cannon(url: string, token: string, seconds: number, connections: number): Promise<LoadResult> {
  const res = await autocannon({
    url: `${url}/queue`,
    method: "POST",
    connections,
    pipelining: 1,
    duration: seconds,
    headers: { "content-type": "application/json", authorization: `Bearer ${token}` },
    body: JSON.stringify(TYPICAL_BODY),
  });
  return {
    reqPerS: res["2xx"] / res.duration,
    p50Ms: res.latency.p50,
    p99Ms: res.latency.p99,
    requests: res.requests.total,
    sent: res.requests.sent,
    accepted202: res.statusCodeStats?.["202"]?.count ?? 0,
    non2xx: res.non2xx,
    errors: res.errors,
    timeouts: res.timeouts,
  };
}

export const enqueueBench: BenchDef = {
  name: "enqueue",
  title: "Bench 1 — enqueue (POST /queue, 32 connections)",
  async run(ctx) {
    const { rounds, seconds, connections } = options({ rounds: 3, seconds: 5, connections: 32 });
    const tiersFile = writeBenchTiers(ctx.dir);
    const api = await startApi({
      redisUrl: ctx.redis.url,
      prefix: PREFIX,
      dataDir: join(ctx.dir, "api"),
      logDir: ctx.logDir,
      extra: { TIERS_FILE: tiersFile },
    });
    const urlFile = join(ctx.dir, "raw.url");
    const rawChild = spawnTs({
      name: "raw-enqueue",
      file: join(PROJECT_ROOT, "bench/raw/enqueue-server.ts"),
      env: baseEnv({ REDIS_URL: ctx.redis.url, RAW_PREFIX, URL_FILE: urlFile }),
      logDir: ctx.logDir,
      nodeArgs: nodeArgs("raw-enqueue"),
    });
    const rawUrl = await waitForFile(urlFile, rawChild);
    const token = await mintToken("bench-enqueue", "pro");
    const toolArg = textOption("tool");
    const tool = toolArg === "autocannon" || (toolArg !== "wrk" && !wrkAvailable()) ? "autocannon" : "wrk";
    const load = (url: string, secs: number) =>
      tool === "wrk" ? wrk(ctx.dir, url, token, secs, connections) : cannon(url, token, secs, connections);
    ctx.log(`ours ${api.url} (pid ${api.child.pid}), raw ${rawUrl} (pid ${rawChild.pid})`);

    // Sanity: one request each must be a 202 before anything is timed.
    for (const [side, url] of [
      ["ours", api.url],
      ["raw", rawUrl],
    ] as const) {
      const res = await fetch(`${url}/queue`, {
        method: "POST",
        headers: { "content-type": "application/json", authorization: `Bearer ${token}` },
        body: JSON.stringify(TYPICAL_BODY),
      });
      if (res.status !== 202)
        throw new Error(`${side}: POST /queue answered ${res.status}: ${await res.text()}`);
    }

    ctx.log(`load generator: ${tool}; warm-up (2 s each, discarded)`);
    await load(api.url, 2);
    await load(rawUrl, 2);

    const results: Round[] = [];
    for (let r = 1; r <= rounds; r++) {
      for (const side of sidesOf(r)) {
        await ctx.redis.flush();
        await ctx.redis.markCost();
        const pid = side === "ours" ? api.child.pid : rawChild.pid;
        const cpuBefore = processCpuSeconds(pid);
        const res = await load(side === "ours" ? api.url : rawUrl, seconds);
        const serverCpuS = processCpuSeconds(pid) - cpuBefore;
        const stored =
          side === "ours"
            ? await ctx.redis.client.zcard(`${PREFIX}:q`)
            : await ctx.redis.client.zcard(`${RAW_PREFIX}:raw-enqueue:prioritized`);
        const accepted = res.accepted202;
        const cost = await ctx.redis.costPer(Math.max(1, accepted));
        const row: Round = {
          side,
          round: r,
          ...res,
          storedJobs: stored,
          redisCpuUs: cost.cpuUsPerUnit,
          serverCpuUs: (serverCpuS * 1e6) / Math.max(1, accepted),
          redisCommands: cost.byCommand,
        };
        results.push(row);
        ctx.log(
          `round ${r} ${side}: ${fmt(row.reqPerS)} req/s, p99 ${row.p99Ms} ms, 202s ${accepted}, non-2xx ${row.non2xx}, errors ${row.errors}, stored ${stored}, Redis CPU ${fmt(row.redisCpuUs, 1)} µs/req, server CPU ${fmt(row.serverCpuUs, 1)} µs/req`,
        );
      }
    }

    const problems: string[] = [];
    for (const r of results) {
      if (r.non2xx > 0 || r.errors > 0 || r.timeouts > 0)
        problems.push(
          `round ${r.round} ${r.side}: ${r.non2xx} non-2xx, ${r.errors} errors, ${r.timeouts} timeouts`,
        );
      if (r.accepted202 === 0) problems.push(`round ${r.round} ${r.side}: no 202 answers`);
      // Answers of requests still in flight at the end may land after the count: allow the connections.
      if (Math.abs(r.storedJobs - r.accepted202) > connections)
        problems.push(
          `round ${r.round} ${r.side}: ${r.accepted202} answered 202 but ${r.storedJobs} jobs stored`,
        );
    }
    printTable(
      [
        "round",
        "side",
        "req/s",
        "p50 ms",
        "p99 ms",
        "202s",
        "non-2xx",
        "errors",
        "jobs stored",
        "Redis CPU µs/req",
        "server CPU µs/req",
      ],
      results.map((r) => [
        String(r.round),
        r.side,
        fmt(r.reqPerS),
        fmt(r.p50Ms, 1),
        fmt(r.p99Ms, 1),
        String(r.accepted202),
        String(r.non2xx),
        String(r.errors),
        String(r.storedJobs),
        fmt(r.redisCpuUs, 1),
        fmt(r.serverCpuUs, 1),
      ]),
    );
    const isOurs = (r: Round) => r.side === "ours";
    // Latency and Redis CPU: less is better, so the ratio is raw ÷ ours (1 = parity, less = worse).
    const lessIsBetter = (what: string, unit: string, value: (r: Round) => number) =>
      pairedFigure({ what, unit, rows: results, isOurs, value, inverse: true });

    return {
      params: { rounds, seconds, connections, tool, body: TYPICAL_BODY, tier: "pro", redis: "appendonly no" },
      rounds: results as unknown as Record<string, unknown>[],
      figures: [
        pairedFigure({
          what: "enqueue throughput",
          unit: "req/s",
          rows: results,
          isOurs,
          value: (r) => r.reqPerS,
          target: { op: ">=", value: 0.7 },
        }),
        lessIsBetter("enqueue p99 latency", "ms", (r) => r.p99Ms),
        lessIsBetter("Redis CPU per request", "µs", (r) => r.redisCpuUs),
        lessIsBetter("server CPU per request", "µs", (r) => r.serverCpuUs),
        lessIsBetter("enqueue p50 latency", "ms", (r) => r.p50Ms),
      ],
      problems,
      notes: [
        "raw bound: bare Hono + @hono/node-server route doing only `await queue.add(name, data, { priority })` (BullMQ) → 202",
        "ours: `render-gateway start --roles api` (JWT auth, validation, Lua admission with position/ETA, event); no workers",
        `Redis FLUSHALL before every round; both servers are separate processes; load generator ${tool === "wrk" ? "wrk (one thread, a process of its own)" : "autocannon, in the bench process"}`,
      ],
    };
  },
};

if (isMain(import.meta.url)) standalone(enqueueBench);
