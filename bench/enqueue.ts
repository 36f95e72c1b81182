// Bench 1 — enqueue: POST /queue on the real API (role api only, no workers: the queue just grows)
// against the raw bound, a bare Hono route that only does a prioritized BullMQ `queue.add` and
// answers 202. 32 connections, interleaved rounds, in two variants measured in every round: one
// tenant (the same valid JWT on every request) and many tenants (`--tenants`, default 1,000: each
// request the next of that many tokens, one customer each, so per-customer state — the submit
// limiter's counters, the token cache — is spread as in production). The raw bound gets the same
// requests (it ignores the token). The load generator is wrk when it is installed (C, one thread: it
// leaves the cores to the servers), else autocannon (Node, in this process).
// `--auth apikey` sends API keys (`rk_…`, one per customer, made through the store before the run)
// instead of HS256 JWTs; `--auth eddsa` EdDSA JWTs of an Ed25519 key in JWT_PUBLIC_KEYS.
//   npx tsx bench/enqueue.ts [--rounds 3] [--seconds 5] [--connections 32] [--tenants 1000] [--tool wrk|autocannon]
//     [--auth hs256|eddsa|apikey]
import { join } from "node:path";
import { TYPICAL_BODY } from "./lib/admit.js";
import { chooseTool, postLoad, type LoadResult } from "./lib/load.js";
import { benchSigner, startApi, writeBenchTiers } from "./lib/gateway.js";
import { startRawEnqueue } from "./lib/raw.js";
import { BENCH_API_KEY_PEPPER, createBenchApiKeys, type BenchApiKeys } from "./lib/api-keys.js";
import { isMain, options, sidesOf, standalone, textOption, type BenchDef } from "./lib/harness.js";
import { processCpuSeconds } from "./lib/proc.js";
import { fmt, pairedFigure, printTable } from "./lib/report.js";
import { createKeys } from "../src/queues/keys.js";

const PREFIX = "{bench}";
const RAW_PREFIX = "rawq";

interface Round extends LoadResult {
  side: "ours" | "raw";
  round: number;
  /** Distinct customers the requests rotate through (1: the same token on every request). */
  tenants: number;
  storedJobs: number;
  /** Redis CPU per accepted request (µs), and commands per request (inner script commands too). */
  redisCpuUs: number;
  /** CPU of the server process (ours: the api role; raw: the bare route) per accepted request, µs. */
  serverCpuUs: number;
  redisCommands: Record<string, number>;
}

export const enqueueBench: BenchDef = {
  name: "enqueue",
  title: "Bench 1 — enqueue (POST /queue, 32 connections; one tenant and many)",
  async run(ctx) {
    const { rounds, seconds, connections, tenants, warmUp } = options({
      rounds: 3,
      seconds: 5,
      connections: 32,
      tenants: 1_000,
      warmUp: 8,
    });
    if (!Number.isInteger(tenants) || tenants < 2) throw new Error("--tenants: an integer of at least 2");
    // (the warm-up also verifies every tenant's token once: it cannot be skipped)
    if (warmUp < 1) throw new Error("--warm-up: seconds, at least 1");
    const apiKeyAuth = textOption("auth") === "apikey";
    const tiersFile = writeBenchTiers(ctx.dir);
    // --auth hs256|eddsa: the signature our API verifies once per token (then cached).
    const signer = await benchSigner(apiKeyAuth ? undefined : textOption("auth"), ctx.dir);
    const api = await startApi({
      redisUrl: ctx.redis.url,
      prefix: PREFIX,
      dataDir: join(ctx.dir, "api"),
      logDir: ctx.logDir,
      extra: {
        TIERS_FILE: tiersFile,
        ...signer.env,
        ...(apiKeyAuth ? { API_KEY_PEPPER: BENCH_API_KEY_PEPPER } : {}),
      },
    });
    const raw = await startRawEnqueue({
      redisUrl: ctx.redis.url,
      prefix: RAW_PREFIX,
      dir: ctx.dir,
      logDir: ctx.logDir,
    });
    const rawChild = raw.child;
    const rawUrl = raw.url;
    // One tenant: the same token on every request; many: one token (and customer) per tenant.
    const tenantNames = Array.from(
      { length: tenants },
      (_, i) => `bench-tenant-${String(i).padStart(4, "0")}`,
    );
    let apiKeys: BenchApiKeys | undefined;
    if (apiKeyAuth) {
      apiKeys = await createBenchApiKeys(ctx.redis.client, PREFIX, ["bench-enqueue", ...tenantNames], "pro");
    }
    const tokenSets = new Map<number, readonly string[]>(
      apiKeys
        ? [
            [1, apiKeys.tokens.slice(0, 1)],
            [tenants, apiKeys.tokens.slice(1)],
          ]
        : [
            [1, [await signer.mint("bench-enqueue", "pro")]],
            [
              tenants,
              await Promise.all(
                Array.from({ length: tenants }, (_, i) =>
                  signer.mint(`bench-tenant-${String(i).padStart(4, "0")}`, "pro"),
                ),
              ),
            ],
          ],
    );
    ctx.log(`auth: ${apiKeyAuth ? "API keys (rk_…)" : `${signer.auth} JWTs`}`);
    const toolArg = textOption("tool");
    const tool = chooseTool(toolArg);
    const load = (url: string, n: number, secs: number) =>
      postLoad(tool, ctx.dir, url, tokenSets.get(n)!, secs, connections);
    ctx.log(
      `ours ${api.url} (pid ${api.child.pid}, ${signer.auth} tokens), raw ${rawUrl} (pid ${rawChild.pid})`,
    );

    // Sanity: one request each must be a 202 before anything is timed.
    for (const [side, url] of [
      ["ours", api.url],
      ["raw", rawUrl],
    ] as const) {
      const res = await fetch(`${url}/queue`, {
        method: "POST",
        headers: { "content-type": "application/json", authorization: `Bearer ${tokenSets.get(1)![0]!}` },
        body: JSON.stringify(TYPICAL_BODY),
      });
      if (res.status !== 202)
        throw new Error(`${side}: POST /queue answered ${res.status}: ${await res.text()}`);
    }

    // The warm-up also has every tenant's token verified once (the API caches verified tokens).
    ctx.log(`load generator: ${tool}; warm-up (${warmUp} s each, discarded)`);
    for (const n of tokenSets.keys()) {
      await load(api.url, n, warmUp);
      await load(rawUrl, n, warmUp);
    }

    const results: Round[] = [];
    for (let r = 1; r <= rounds; r++) {
      for (const n of tokenSets.keys()) {
        for (const side of sidesOf(r)) {
          await ctx.redis.flush();
          await apiKeys?.restore();
          await ctx.redis.markCost();
          const pid = side === "ours" ? api.child.pid : rawChild.pid;
          const cpuBefore = processCpuSeconds(pid);
          const res = await load(side === "ours" ? api.url : rawUrl, n, seconds);
          const serverCpuS = processCpuSeconds(pid) - cpuBefore;
          const stored =
            side === "ours"
              ? await ctx.redis.client.zcard(createKeys(PREFIX).queue)
              : await ctx.redis.client.zcard(`${RAW_PREFIX}:raw-enqueue:prioritized`);
          const accepted = res.accepted202;
          const cost = await ctx.redis.costPer(Math.max(1, accepted));
          const row: Round = {
            side,
            round: r,
            tenants: n,
            ...res,
            storedJobs: stored,
            redisCpuUs: cost.cpuUsPerUnit,
            serverCpuUs: (serverCpuS * 1e6) / Math.max(1, accepted),
            redisCommands: cost.byCommand,
          };
          results.push(row);
          ctx.log(
            `round ${r} ${side}, ${n} tenant(s): ${fmt(row.reqPerS)} req/s, p99 ${row.p99Ms} ms, 202s ${accepted}, non-2xx ${row.non2xx}, errors ${row.errors}, stored ${stored}, Redis CPU ${fmt(row.redisCpuUs, 1)} µs/req, server CPU ${fmt(row.serverCpuUs, 1)} µs/req`,
          );
        }
      }
    }

    const problems: string[] = [];
    for (const r of results) {
      const what = `round ${r.round} ${r.side}, ${r.tenants} tenant(s)`;
      if (r.non2xx > 0 || r.errors > 0 || r.timeouts > 0)
        problems.push(`${what}: ${r.non2xx} non-2xx, ${r.errors} errors, ${r.timeouts} timeouts`);
      if (r.accepted202 === 0) problems.push(`${what}: no 202 answers`);
      // Answers of requests still in flight at the end may land after the count: allow the connections.
      if (Math.abs(r.storedJobs - r.accepted202) > connections)
        problems.push(`${what}: ${r.accepted202} answered 202 but ${r.storedJobs} jobs stored`);
    }
    printTable(
      [
        "round",
        "side",
        "tenants",
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
        String(r.tenants),
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
    const one = results.filter((r) => r.tenants === 1);
    const many = results.filter((r) => r.tenants === tenants);
    const manyLabel = `${tenants.toLocaleString("en-US")} tenants`;
    // Latency and Redis CPU: less is better, so the ratio is raw ÷ ours (1 = parity, less = worse).
    const lessIsBetter = (rows: Round[], what: string, unit: string, value: (r: Round) => number) =>
      pairedFigure({ what, unit, rows, isOurs, value, inverse: true });

    return {
      params: {
        rounds,
        seconds,
        connections,
        tenants,
        tool,
        body: TYPICAL_BODY,
        tier: "pro",
        auth: apiKeyAuth ? "apikey" : signer.auth,
        redis: "appendonly no",
      },
      rounds: results as unknown as Record<string, unknown>[],
      figures: [
        pairedFigure({
          what: "enqueue throughput",
          unit: "req/s",
          rows: one,
          isOurs,
          value: (r) => r.reqPerS,
          target: { op: ">=", value: 0.85 },
        }),
        pairedFigure({
          what: `enqueue throughput, ${manyLabel}`,
          unit: "req/s",
          rows: many,
          isOurs,
          value: (r) => r.reqPerS,
          target: { op: ">=", value: 0.85 },
        }),
        lessIsBetter(one, "enqueue p99 latency", "ms", (r) => r.p99Ms),
        lessIsBetter(many, `enqueue p99 latency, ${manyLabel}`, "ms", (r) => r.p99Ms),
        lessIsBetter(one, "Redis CPU per request", "µs", (r) => r.redisCpuUs),
        lessIsBetter(many, `Redis CPU per request, ${manyLabel}`, "µs", (r) => r.redisCpuUs),
        lessIsBetter(one, "server CPU per request", "µs", (r) => r.serverCpuUs),
        lessIsBetter(many, `server CPU per request, ${manyLabel}`, "µs", (r) => r.serverCpuUs),
        lessIsBetter(one, "enqueue p50 latency", "ms", (r) => r.p50Ms),
      ],
      problems,
      notes: [
        "raw bound: bare Hono + @hono/node-server route doing only `await queue.add(name, data, { priority })` (BullMQ) → 202",
        `ours: \`render-gateway start --roles api\` (${apiKeyAuth ? "API-key" : "JWT"} auth, validation, Lua admission with position/ETA, event); no workers`,
        `tenants: one token on every request, or ${manyLabel} (each request the next token, one customer each; the raw bound gets the same requests and ignores the token); tier pro with a bench TIERS_FILE (submits_per_min 10⁹: finite, so a submit limiter runs on every request without refusing)`,
        `Redis FLUSHALL before every round; both servers are separate processes; load generator ${tool === "wrk" ? "wrk (one thread, a process of its own)" : "autocannon, in the bench process"}`,
      ],
    };
  },
};

if (isMain(import.meta.url)) standalone(enqueueBench);
