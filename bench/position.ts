// Bench 3 — position lookup: reading a queued job's position with 1,000 vs 100,000 jobs queued, end
// to end (GET /jobs/{id} through the API) and the read script alone (EVALSHA round trip, plus its
// server-side time from INFO commandstats). Two queues under two prefixes in one Redis, one API
// process each; samples at the head, middle and tail; interleaved rounds. The jobs of each queue come
// from `tenants` customers (weighted fair share orders them: tiers free, pro and enterprise, weights
// 1, 4 and 16, priorities mixed), admitted round robin.
//   npx tsx bench/position.ts [--small 1000] [--large 100000] [--tenants 1000] [--requests 600] [--rounds 3]
import { join } from "node:path";
import { performance } from "node:perf_hooks";
import { Pool } from "undici";
import { createKeys } from "../src/queues/keys.js";
import { defineScripts } from "../src/queues/scripts.js";
import type { Priority } from "../src/core/job.js";
import { createAdmitter, TYPICAL_BODY, type Submitter } from "./lib/admit.js";
import { mintToken, startApi, writeBenchTiers, type ApiProcess } from "./lib/gateway.js";
import { isMain, options, standalone, type BenchContext, type BenchDef } from "./lib/harness.js";
import { fmt, median, pairedFigure, percentile, printTable } from "./lib/report.js";

interface Queue {
  readonly label: "small" | "large";
  readonly size: number;
  readonly prefix: string;
  api?: ApiProcess;
  pool?: Pool;
  /** Sample points: name, job id, expected position (its rank). */
  samples: { where: string; id: string; rank: number }[];
}

interface Measure {
  round: number;
  queue: "small" | "large";
  path: "api" | "script";
  medianUs: number;
  p99Us: number;
  /** Server-side µs per EVALSHA (INFO commandstats), the read script only for `script`. */
  redisUsPerCall: number;
  perSample: Record<string, number>;
}

/**
 * The submitter of the i-th job: tenant i mod `tenants`, of tier free, pro or enterprise (weights 1, 4,
 * 16) by tenant, at a priority its tier allows, varying without a pattern that lines up with them.
 */
function submitterOf(tenants: number): (i: number) => Submitter {
  const tiers = ["free", "pro", "enterprise"] as const;
  return (i) => {
    const t = i % tenants;
    const tier = tiers[t % tiers.length]!;
    const allowed: readonly Priority[] = tier === "free" ? ["normal", "low"] : ["high", "normal", "low"];
    return {
      customerId: `tenant-${t}`,
      tier,
      priority: allowed[(i * 7 + Math.floor(i / tenants)) % allowed.length]!,
    };
  };
}

export const positionBench: BenchDef = {
  name: "position",
  title: "Bench 3 — position lookup (1,000 vs 100,000 queued)",
  async run(ctx: BenchContext) {
    const { small, large, tenants, requests, rounds } = options({
      small: 1_000,
      large: 100_000,
      tenants: 1_000,
      requests: 600,
      rounds: 3,
    });
    const redis = ctx.redis.client;
    // an operator reads every tenant's jobs
    const token = await mintToken("bench-position", "pro", { admin: true });
    const tiersFile = writeBenchTiers(ctx.dir);
    const queues: Queue[] = [
      { label: "small", size: small, prefix: "{small}", samples: [] },
      { label: "large", size: large, prefix: "{large}", samples: [] },
    ];

    for (const q of queues) {
      const t0 = performance.now();
      const admitter = createAdmitter({
        redis,
        prefix: q.prefix,
        dataDir: join(ctx.dir, `admit-${q.label}`),
        body: TYPICAL_BODY,
        customerId: submitterOf(tenants),
      });
      await admitter.admit(q.size, 512);
      const depth = await redis.zcard(createKeys(q.prefix).queue);
      if (depth !== q.size) throw new Error(`${q.label}: ${depth} queued, expected ${q.size}`);
      for (const [where, rank] of [
        ["head", 0],
        ["middle", Math.floor(q.size / 2)],
        ["tail", q.size - 1],
      ] as const) {
        const [id] = await redis.zrange(createKeys(q.prefix).queue, String(rank), String(rank));
        q.samples.push({ where, id: id!, rank });
      }
      const active = await redis.scard(createKeys(q.prefix).activeTenants);
      if (active !== Math.min(tenants, q.size))
        throw new Error(`${q.label}: ${active} active tenants, expected ${Math.min(tenants, q.size)}`);
      ctx.log(
        `${q.label}: admitted ${q.size} jobs of ${active} tenants in ${fmt((performance.now() - t0) / 1000, 1)} s`,
      );
      q.api = await startApi({
        name: `api-${q.label}`,
        redisUrl: ctx.redis.url,
        prefix: q.prefix,
        dataDir: join(ctx.dir, `api-${q.label}`),
        logDir: ctx.logDir,
        extra: { TIERS_FILE: tiersFile },
      });
      q.pool = new Pool(q.api.url, { connections: 1, pipelining: 1 });
    }
    ctx.log(`Redis used memory ${fmt((await ctx.redis.usedMemoryBytes()) / 2 ** 20)} MiB`);

    const problems: string[] = [];
    const getJob = async (q: Queue, id: string) => {
      const res = await q.pool!.request({
        path: `/jobs/${id}`,
        method: "GET",
        headers: { authorization: `Bearer ${token}`, accept: "application/json" },
      });
      const body = (await res.body.json()) as { position?: number; status?: string };
      return { status: res.statusCode, body };
    };
    // Correctness first: the API reports the rank as the position.
    for (const q of queues) {
      for (const s of q.samples) {
        const { status, body } = await getJob(q, s.id);
        if (status !== 200 || body.position !== s.rank)
          problems.push(
            `${q.label} ${s.where}: status ${status}, position ${body.position}, expected ${s.rank}`,
          );
      }
    }

    const scripts = new Map(queues.map((q) => [q.label, defineScripts(redis, q.prefix)]));
    const measure = async (q: Queue, path: "api" | "script", round: number): Promise<Measure> => {
      const run = scripts.get(q.label)!;
      const route = createKeys(q.prefix).queue;
      const once = async (id: string) => {
        if (path === "api") {
          const { status } = await getJob(q, id);
          if (status !== 200) throw new Error(`GET /jobs/${id}: ${status}`);
        } else {
          await run("read", route, [id]);
        }
      };
      for (let i = 0; i < 60; i++) await once(q.samples[i % 3]!.id); // warm-up
      await redis.config("RESETSTAT");
      const all: number[] = [];
      const by: Record<string, number[]> = { head: [], middle: [], tail: [] };
      for (let i = 0; i < requests; i++) {
        const s = q.samples[i % 3]!;
        const t = performance.now();
        await once(s.id);
        const us = (performance.now() - t) * 1000;
        all.push(us);
        by[s.where]!.push(us);
      }
      const stats = (await ctx.redis.commandStats()).get("evalsha");
      return {
        round,
        queue: q.label,
        path,
        medianUs: median(all),
        p99Us: percentile(all, 99),
        redisUsPerCall: stats && stats.calls > 0 ? stats.usec / stats.calls : Number.NaN,
        perSample: Object.fromEntries(Object.entries(by).map(([k, v]) => [k, median(v)])),
      };
    };

    const results: Measure[] = [];
    try {
      for (let r = 1; r <= rounds; r++) {
        for (const path of ["api", "script"] as const) {
          // Interleaved like the other benches: small then large in odd rounds, large then small in even.
          for (const q of r % 2 === 1 ? queues : [...queues].reverse()) {
            const m = await measure(q, path, r);
            results.push(m);
            ctx.log(
              `round ${r} ${path} ${q.label}: median ${fmt(m.medianUs)} µs, p99 ${fmt(m.p99Us)} µs, redis ${fmt(m.redisUsPerCall, 1)} µs/evalsha`,
            );
          }
        }
      }
    } finally {
      for (const q of queues) await q.pool?.close();
    }

    printTable(
      ["round", "path", "queue", "median µs", "p99 µs", "head µs", "middle µs", "tail µs", "redis µs/call"],
      results.map((m) => [
        String(m.round),
        m.path,
        `${m.queue} (${m.queue === "small" ? small : large})`,
        fmt(m.medianUs),
        fmt(m.p99Us),
        fmt(m.perSample.head!),
        fmt(m.perSample.middle!),
        fmt(m.perSample.tail!),
        fmt(m.redisUsPerCall, 1),
      ]),
    );
    const fig = (what: string, path: Measure["path"], k: "medianUs" | "redisUsPerCall") =>
      pairedFigure({
        what,
        unit: "µs",
        rows: results.filter((m) => m.path === path),
        isOurs: (m) => m.queue === "large",
        value: (m) => m[k],
        names: [`at ${large}`, `at ${small}`],
        target: { op: "<=", value: 2 },
      });
    return {
      params: {
        small,
        large,
        tenants,
        requestsPerMeasure: requests,
        rounds,
        samples: ["head", "middle", "tail"],
      },
      rounds: results as unknown as Record<string, unknown>[],
      figures: [
        fig("GET /jobs/{id} end to end", "api", "medianUs"),
        fig("read script round trip", "script", "medianUs"),
        fig("read script in Redis", "script", "redisUsPerCall"),
      ],
      problems,
      notes: [
        "one request in flight (latency, not throughput); the bench process is the client",
        "both queues live in the same Redis at the same time (same memory, same server)",
        "`ours` column = time at the large queue, `bound` column = time at the small one",
        `jobs of ${tenants} tenants in each queue (round robin; tiers free/pro/enterprise, priorities mixed): the fair-share order, not admission order`,
      ],
    };
  },
};

if (isMain(import.meta.url)) standalone(positionBench);
