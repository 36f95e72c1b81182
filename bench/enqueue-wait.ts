// Bench — the cost of REDIS_WAIT_REPLICAS=1 on enqueue: POST /queue on two API processes against the
// same Redis with one replica attached (`--replicaof`, on this machine), one answering 202 at once
// (WAIT off) and one only once the replica holds the job (WAIT 1, REDIS_WAIT_MS 1000), and the raw
// bound of bench/enqueue.ts (a bare `queue.add` route), interleaved rounds of the three in one run.
// Figures: each side against the raw bound, and WAIT 1 against WAIT off (throughput, p99, Redis CPU
// per request). One tenant, 32 connections, wrk when installed.
//   npx tsx bench/enqueue-wait.ts [--rounds 3] [--seconds 5] [--connections 32] [--tool wrk|autocannon]
import { mkdirSync } from "node:fs";
import { join } from "node:path";
import { TYPICAL_BODY } from "./lib/admit.js";
import { benchSigner, startApi, writeBenchTiers } from "./lib/gateway.js";
import { isMain, options, standalone, textOption, type BenchDef } from "./lib/harness.js";
import { chooseTool, postLoad, type LoadResult } from "./lib/load.js";
import { processCpuSeconds, spawnChild, waitUntil } from "./lib/proc.js";
import { startRawEnqueue } from "./lib/raw.js";
import { fmt, pairedFigure, printTable } from "./lib/report.js";
import { freeLoopbackPort, pingRedis, redisServerArgs } from "../src/infra/embedded-redis.js";
import { createKeys } from "../src/queues/keys.js";
import { PROJECT_ROOT } from "./lib/proc.js";

const PREFIX = "{bench}";
const RAW_PREFIX = "rawq";

type Side = "wait" | "nowait" | "raw";

interface Round extends LoadResult {
  side: Side;
  round: number;
  storedJobs: number;
  redisCpuUs: number;
  serverCpuUs: number;
  /** WAIT and the INCR before it, per accepted request (how many admissions one WAIT covers). */
  waitsPerRequest: number;
}

/** The three sides in round `round`, rotated so that none always runs first. */
function sidesOf(round: number): Side[] {
  const all: Side[] = ["nowait", "wait", "raw"];
  const k = (round - 1) % all.length;
  return [...all.slice(k), ...all.slice(0, k)];
}

export const enqueueWaitBench: BenchDef = {
  name: "enqueue-wait",
  title: "Bench — enqueue with REDIS_WAIT_REPLICAS=1 vs off (one replica attached), and the raw bound",
  async run(ctx) {
    const { rounds, seconds, connections, waitMs } = options({
      rounds: 3,
      seconds: 5,
      connections: 32,
      waitMs: 1_000,
    });
    // The replica: the bench's redis-server is its primary (full sync at once, not after 5 s).
    await ctx.redis.client.config("SET", "repl-diskless-sync-delay", "0");
    const primaryPort = Number(new URL(ctx.redis.url).port);
    const replicaPort = await freeLoopbackPort();
    const replicaDir = join(ctx.dir, "replica");
    mkdirSync(replicaDir, { recursive: true });
    const replica = spawnChild({
      name: "redis-replica",
      command: "redis-server",
      args: redisServerArgs({
        confPath: join(PROJECT_ROOT, "redis.conf"),
        dir: replicaDir,
        port: replicaPort,
        extraArgs: ["--appendonly", "no", "--save", "", "--replicaof", "127.0.0.1", String(primaryPort)],
      }),
      env: { PATH: process.env.PATH ?? "/usr/bin:/bin" },
      logDir: ctx.logDir,
    });
    await waitUntil("the replica answers", () => pingRedis(replicaPort), 10_000, 50, [replica]);
    await waitUntil(
      "the replica is online",
      async () => /slave0:.*state=online/.test(await ctx.redis.client.info("replication")),
      30_000,
      50,
      [replica],
    );

    const tiersFile = writeBenchTiers(ctx.dir);
    const signer = await benchSigner(undefined, ctx.dir);
    const common = { redisUrl: ctx.redis.url, prefix: PREFIX, logDir: ctx.logDir };
    const extra = { TIERS_FILE: tiersFile, ...signer.env };
    const nowait = await startApi({
      ...common,
      name: "api-nowait",
      dataDir: join(ctx.dir, "api-nowait"),
      extra,
    });
    const wait = await startApi({
      ...common,
      name: "api-wait",
      dataDir: join(ctx.dir, "api-wait"),
      extra: { ...extra, REDIS_WAIT_REPLICAS: "1", REDIS_WAIT_MS: String(waitMs) },
    });
    const raw = await startRawEnqueue({
      redisUrl: ctx.redis.url,
      prefix: RAW_PREFIX,
      dir: ctx.dir,
      logDir: ctx.logDir,
    });
    const token = await signer.mint("bench-enqueue-wait", "pro");
    const sides = {
      nowait: { url: nowait.url, pid: nowait.child.pid },
      wait: { url: wait.url, pid: wait.child.pid },
      raw: { url: raw.url, pid: raw.child.pid },
    };
    for (const [side, { url }] of Object.entries(sides)) {
      const res = await fetch(`${url}/queue`, {
        method: "POST",
        headers: { "content-type": "application/json", authorization: `Bearer ${token}` },
        body: JSON.stringify(TYPICAL_BODY),
      });
      if (res.status !== 202)
        throw new Error(`${side}: POST /queue answered ${res.status}: ${await res.text()}`);
    }
    const tool = chooseTool(textOption("tool"));
    const load = (url: string, secs: number) => postLoad(tool, ctx.dir, url, [token], secs, connections);
    ctx.log(`load generator: ${tool}; warm-up (2 s each, discarded)`);
    for (const { url } of Object.values(sides)) await load(url, 2);

    const results: Round[] = [];
    for (let r = 1; r <= rounds; r++) {
      for (const side of sidesOf(r)) {
        await ctx.redis.flush();
        await ctx.redis.markCost();
        const { url, pid } = sides[side];
        const cpuBefore = processCpuSeconds(pid);
        const res = await load(url, seconds);
        const serverCpuS = processCpuSeconds(pid) - cpuBefore;
        const stored =
          side === "raw"
            ? await ctx.redis.client.zcard(`${RAW_PREFIX}:raw-enqueue:prioritized`)
            : await ctx.redis.client.zcard(createKeys(PREFIX).queue);
        const accepted = Math.max(1, res.accepted202);
        const cost = await ctx.redis.costPer(accepted);
        const row: Round = {
          side,
          round: r,
          ...res,
          storedJobs: stored,
          redisCpuUs: cost.cpuUsPerUnit,
          serverCpuUs: (serverCpuS * 1e6) / accepted,
          waitsPerRequest: cost.byCommand["wait"] ?? 0,
        };
        results.push(row);
        ctx.log(
          `round ${r} ${side}: ${fmt(row.reqPerS)} req/s, p50 ${row.p50Ms} ms, p99 ${row.p99Ms} ms, 202s ${res.accepted202}, non-2xx ${row.non2xx}, Redis CPU ${fmt(row.redisCpuUs, 1)} µs/req, WAITs ${fmt(row.waitsPerRequest, 3)}/req`,
        );
      }
    }

    const problems: string[] = [];
    for (const r of results) {
      const what = `round ${r.round} ${r.side}`;
      if (r.non2xx > 0 || r.errors > 0 || r.timeouts > 0)
        problems.push(`${what}: ${r.non2xx} non-2xx, ${r.errors} errors, ${r.timeouts} timeouts`);
      if (r.accepted202 === 0) problems.push(`${what}: no 202 answers`);
      if (Math.abs(r.storedJobs - r.accepted202) > connections)
        problems.push(`${what}: ${r.accepted202} answered 202 but ${r.storedJobs} jobs stored`);
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
        "Redis CPU µs/req",
        "server CPU µs/req",
        "WAITs/req",
      ],
      results.map((r) => [
        String(r.round),
        r.side,
        fmt(r.reqPerS),
        fmt(r.p50Ms, 1),
        fmt(r.p99Ms, 1),
        String(r.accepted202),
        String(r.non2xx),
        fmt(r.redisCpuUs, 1),
        fmt(r.serverCpuUs, 1),
        fmt(r.waitsPerRequest, 3),
      ]),
    );
    const pair = (a: Side, b: Side) => results.filter((r) => r.side === a || r.side === b);
    const isWait = (r: Round) => r.side === "wait";
    const isOurs = (r: Round) => r.side !== "raw";
    const waitNames = ["WAIT 1", "WAIT off"] as const;
    return {
      params: { rounds, seconds, connections, tool, waitMs, replicas: 1, body: TYPICAL_BODY, tier: "pro" },
      rounds: results as unknown as Record<string, unknown>[],
      figures: [
        pairedFigure({
          what: "enqueue throughput, WAIT off, a replica attached",
          unit: "req/s",
          rows: pair("nowait", "raw"),
          isOurs,
          value: (r) => r.reqPerS,
        }),
        pairedFigure({
          what: "enqueue throughput, WAIT 1",
          unit: "req/s",
          rows: pair("wait", "raw"),
          isOurs,
          value: (r) => r.reqPerS,
        }),
        pairedFigure({
          what: "cost of WAIT 1: throughput",
          unit: "req/s",
          rows: pair("wait", "nowait"),
          isOurs: isWait,
          names: waitNames,
          value: (r) => r.reqPerS,
        }),
        pairedFigure({
          what: "cost of WAIT 1: p99 latency",
          unit: "ms",
          rows: pair("wait", "nowait"),
          isOurs: isWait,
          names: waitNames,
          inverse: true,
          value: (r) => r.p99Ms,
        }),
        pairedFigure({
          what: "cost of WAIT 1: p50 latency",
          unit: "ms",
          rows: pair("wait", "nowait"),
          isOurs: isWait,
          names: waitNames,
          inverse: true,
          value: (r) => r.p50Ms,
        }),
        pairedFigure({
          what: "cost of WAIT 1: Redis CPU per request",
          unit: "µs",
          rows: pair("wait", "nowait"),
          isOurs: isWait,
          names: waitNames,
          inverse: true,
          value: (r) => r.redisCpuUs,
        }),
      ],
      problems,
      notes: [
        "one replica (`--replicaof`) on this machine, attached in every round (the WAIT-off side pays for replicating too)",
        `WAIT 1: REDIS_WAIT_REPLICAS=1, REDIS_WAIT_MS=${waitMs}; one INCR + WAIT per batch of admissions answered meanwhile (queues/replica-wait.ts), on a connection of its own`,
        "raw bound: bare Hono route doing `await queue.add(name, data, { priority })` (BullMQ) → 202, no WAIT",
        "Redis FLUSHALL before every round; the sides rotate their order each round",
      ],
    };
  },
};

if (isMain(import.meta.url)) standalone(enqueueWaitBench);
