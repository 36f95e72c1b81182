// Bench — pools on a Redis Cluster (issue 15 item 5; docs/decisions.md "Pools"): N jobs through the
// worker role on a 3-master Cluster, as one pool (the default: every key on one master) and as 3
// pools whose tags the Cluster serves from 3 different masters (N/3 jobs each, a worker process per
// pool). Throughput (first start to last completion), Redis CPU per job (INFO cpu of every master)
// and how that CPU splits across the masters; interleaved rounds. On one machine the masters share
// its cores, so this shows the split and the cost per job, not the gain of 3 machines.
//   npx tsx bench/pools.ts [--jobs 1500] [--concurrency 8] [--rounds 3]
import { join } from "node:path";
import { Cluster } from "ioredis";
import { createAdmitter, workerBody, type Admitter } from "./lib/admit.js";
import { startZeroStepSim, writeBackendsFile } from "./lib/gateway.js";
import { isMain, options, standalone, type BenchContext, type BenchDef } from "./lib/harness.js";
import { baseEnv, spawnChild, waitUntil, GATEWAY_ROOT, type Child } from "./lib/proc.js";
import { fmt, printTable } from "./lib/report.js";
import { startCluster } from "../test/helpers/cluster.js";
import { poolPrefix } from "../src/core/pools.js";
import { createKeys } from "../src/queues/keys.js";

const PREFIX = "{bench}";
const MODELS = ["flux/dev", "flux/dev2", "flux/schnell"];

interface Round {
  side: "1 pool" | "3 pools";
  round: number;
  completed: number;
  jobsPerS: number;
  redisCpuUs: number;
  /** Share of the Redis CPU of the round taken by each master, largest first. */
  split: number[];
}

export const poolsBench: BenchDef = {
  name: "pools",
  title: "Bench — 3 pools on a 3-master Redis Cluster vs 1 pool",
  async run(ctx: BenchContext) {
    const { jobs, concurrency, rounds } = options({ jobs: 1500, concurrency: 8, rounds: 3 });
    const dep = await startCluster(join(ctx.dir, "cluster"), { masters: 3 });
    const cluster = new Cluster(dep.startupNodes.map((n) => ({ host: n.host, port: n.port })));
    // pool names whose tags the Cluster serves from 3 different masters
    const byPort = new Map<number, string>();
    for (let i = 0; byPort.size < 3 && i < 1000; i++) {
      const m = await dep.masterOf(`${poolPrefix(PREFIX, `p${i}`)}:x`);
      if (!byPort.has(m.port)) byPort.set(m.port, `p${i}`);
    }
    const names = [...byPort.values()];
    const { sim } = await startZeroStepSim(ctx.dir, ctx.logDir, concurrency * 3);
    // every backend serves every model, so any pool's worker runs the admitted jobs
    const backendsFile = writeBackendsFile(
      ctx.dir,
      names.map((_, i) => ({ id: `sim-${i}`, url: sim.url, capacity: concurrency * 2, models: ["*"] })),
    );
    const poolsFile = join(ctx.dir, "pools.json");
    const { writeFileSync } = await import("node:fs");
    writeFileSync(
      poolsFile,
      JSON.stringify({
        pools: names.map((name, i) => ({ name, models: [MODELS[i]], backends: [`sim-${i}`] })),
      }),
    );
    const admitters = new Map<string, Admitter>();
    const admitter = (prefix: string) => {
      let a = admitters.get(prefix);
      if (!a)
        admitters.set(
          prefix,
          (a = createAdmitter({
            redis: cluster,
            prefix,
            dataDir: join(ctx.dir, "admit"),
            body: workerBody(),
            customerId: "bench-pools",
          })),
        );
      return a;
    };
    const cpu = async () => {
      const out = new Map<number, number>();
      for (const m of await dep.masters()) {
        const info = await dep.client(m).info("cpu");
        const v = (k: string) => Number(new RegExp(`${k}:([0-9.]+)`).exec(info)?.[1] ?? 0);
        out.set(m.port, v("used_cpu_sys") + v("used_cpu_user"));
      }
      return out;
    };
    const startWorker = async (name: string, pool: string | undefined): Promise<Child> => {
      const child = spawnChild({
        name,
        command: process.execPath,
        args: [join(GATEWAY_ROOT, "bin/render-gateway.js"), "start", "--roles", "worker"],
        env: baseEnv({
          ...dep.env(),
          REDIS_PREFIX: PREFIX,
          DATA_DIR: join(ctx.dir, name),
          LOG_LEVEL: "warn",
          SHUTDOWN_GRACE_MS: "2000",
          BACKENDS_FILE: backendsFile,
          // the single pool is the deployment without POOLS_FILE
          ...(pool === undefined ? {} : { POOLS_FILE: poolsFile }),
          WORKER_CONCURRENCY: String(concurrency),
          JOB_RETENTION_COUNT: String(Math.max(100_000, jobs)),
          ...(pool === undefined ? {} : { WORKER_POOL: pool }),
        }),
        logDir: ctx.logDir,
      });
      return child;
    };

    const runSide = async (side: Round["side"], round: number): Promise<Round> => {
      await Promise.all((await dep.masters()).map((m) => dep.client(m).flushall()));
      const parts =
        side === "1 pool" ? [{ pool: undefined, n: jobs }] : names.map((pool) => ({ pool, n: jobs / 3 }));
      const ids = new Map<string | undefined, string[]>();
      for (const p of parts)
        ids.set(p.pool, await admitter(poolPrefix(PREFIX, p.pool)).admit(Math.round(p.n)));
      const before = await cpu();
      const workers = await Promise.all(
        parts.map((p, i) => startWorker(`w-${round}-${side[0]}-${i}`, p.pool)),
      );
      for (const p of parts) {
        const done = createKeys(poolPrefix(PREFIX, p.pool)).done;
        await waitUntil(
          "jobs to finish",
          async () => (await cluster.zcard(done)) >= Math.round(p.n),
          180_000,
          50,
          workers,
        );
      }
      const after = await cpu();
      const t = { first: Infinity, last: 0, completed: 0 };
      for (const p of parts) {
        for (const [status, started, completed] of await admitter(poolPrefix(PREFIX, p.pool)).fields(
          ids.get(p.pool)!,
          ["status", "started", "completed"],
        )) {
          if (status === "complete") t.completed++;
          if (started) t.first = Math.min(t.first, Number(started));
          if (completed) t.last = Math.max(t.last, Number(completed));
        }
      }
      await Promise.all(workers.map((w) => w.stop()));
      const used = [...after].map(([port, v]) => v - (before.get(port) ?? 0));
      const total = used.reduce((a, b) => a + b, 0);
      return {
        side,
        round,
        completed: t.completed,
        jobsPerS: (t.completed / (t.last - t.first)) * 1000,
        redisCpuUs: (total * 1e6) / t.completed,
        split: used.map((u) => u / total).sort((a, b) => b - a),
      };
    };

    const results: Round[] = [];
    try {
      for (let r = 1; r <= rounds; r++) {
        const order: Round["side"][] = r % 2 === 1 ? ["1 pool", "3 pools"] : ["3 pools", "1 pool"];
        for (const side of order) {
          const row = await runSide(side, r);
          results.push(row);
          ctx.log(
            `round ${r} ${side}: ${fmt(row.jobsPerS)} jobs/s, Redis CPU ${fmt(row.redisCpuUs)} µs/job, split ${row.split.map((s) => s.toFixed(2)).join("/")}`,
          );
        }
      }
    } finally {
      cluster.disconnect();
      await sim.close();
      await dep.stop();
    }
    printTable(
      ["round", "side", "jobs/s", "complete", "Redis CPU µs/job", "CPU split across masters"],
      results.map((r) => [
        String(r.round),
        r.side,
        fmt(r.jobsPerS),
        String(r.completed),
        fmt(r.redisCpuUs),
        r.split.map((s) => s.toFixed(2)).join(" / "),
      ]),
    );
    const med = (side: Round["side"], f: (r: Round) => number) => {
      const xs = results
        .filter((r) => r.side === side)
        .map(f)
        .sort((a, b) => a - b);
      return xs[Math.floor(xs.length / 2)] ?? NaN;
    };
    const problems = results
      .filter(
        (r) =>
          r.completed !== Math.round(jobs / (r.side === "1 pool" ? 1 : 3)) * (r.side === "1 pool" ? 1 : 3),
      )
      .map((r) => `round ${r.round} ${r.side}: ${r.completed} jobs complete`);
    return {
      params: { jobs, concurrency, rounds, masters: 3, pools: names },
      rounds: results as unknown as Record<string, unknown>[],
      figures: [],
      problems,
      notes: [
        `throughput 3 pools / 1 pool (medians): ${(med("3 pools", (r) => r.jobsPerS) / med("1 pool", (r) => r.jobsPerS)).toFixed(2)}`,
        `Redis CPU per job 3 pools / 1 pool (medians): ${(med("3 pools", (r) => r.redisCpuUs) / med("1 pool", (r) => r.redisCpuUs)).toFixed(2)}`,
        `largest master's share of Redis CPU (medians): 1 pool ${med("1 pool", (r) => r.split[0]!).toFixed(2)}, 3 pools ${med("3 pools", (r) => r.split[0]!).toFixed(2)}`,
        "1 pool: one worker process (WORKER_CONCURRENCY slots); 3 pools: one worker process per pool, each with as many slots, N/3 jobs each",
        "all masters, workers and the sim share this machine's cores: on 3 machines each master has a core of its own",
      ],
    };
  },
};

if (isMain(import.meta.url)) standalone(poolsBench);
