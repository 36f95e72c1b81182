// The setup of the utilisation and recovery benches: three simulated backends in three processes
// with different capacities and a fixed step time, a backends file listing them, jobs admitted
// with the scheduler, and our worker role started on top.
import { join } from "node:path";
import { performance } from "node:perf_hooks";
import { Pool } from "undici";
import { createAdmitter, workerBody, type Admitter } from "./admit.js";
import { startSim, startWorker, writeBackendsFile, type SimProcess } from "./gateway.js";
import type { BenchContext } from "./harness.js";
import type { Child } from "./proc.js";
import { median } from "./report.js";

export const CLUSTER_PREFIX = "{bench}";

export interface ClusterOptions {
  readonly capacities: readonly number[];
  readonly stepMs: number;
  readonly steps: number;
  readonly concurrency: number;
  readonly healthIntervalMs: number;
  readonly streaming: boolean;
}

export interface Cluster {
  readonly sims: readonly SimProcess[];
  readonly capacities: readonly number[];
  readonly ids: readonly string[];
  readonly admitter: Admitter;
  readonly backendsFile: string;
  /** Per-job service time of each sim when idle (median of sequential calls), ms. */
  idleServiceMs(calls?: number): Promise<number[]>;
  /** Jobs that reached a terminal state (ZCARD of the scheduler's retention set). */
  done(): Promise<number>;
  startWorker(name: string): Promise<Child>;
  close(): Promise<void>;
}

export async function startCluster(ctx: BenchContext, o: ClusterOptions): Promise<Cluster> {
  const sims: SimProcess[] = [];
  for (const [i, cap] of o.capacities.entries()) {
    sims.push(
      await startSim({
        name: `sim-${i}-cap${cap}`,
        stepMs: o.stepMs,
        capacity: cap,
        dataDir: join(ctx.dir, `sim-${i}`),
        logDir: ctx.logDir,
      }),
    );
  }
  const backendsFile = writeBackendsFile(
    ctx.dir,
    sims.map((s, i) => ({ id: `gpu-${i}`, url: s.url, capacity: o.capacities[i]!, streaming: o.streaming })),
  );
  const admitter = createAdmitter({
    redis: ctx.redis.client,
    prefix: CLUSTER_PREFIX,
    dataDir: join(ctx.dir, "admit"),
    body: workerBody(o.steps),
    customerId: "bench-cluster",
  });
  const body = JSON.stringify(await admitter.inferBody("idle-probe"));
  const pools = sims.map((s) => new Pool(s.url, { connections: 1 }));
  const path = o.streaming ? "/v2/models/flux-schnell/generate_stream" : "/v2/models/flux-schnell/infer";

  const timedCall = async (pool: Pool) => {
    const t = performance.now();
    const res = await pool.request({
      method: "POST",
      path,
      body,
      headers: { "content-type": "application/json" },
    });
    await res.body.text();
    if (res.statusCode !== 200) throw new Error(`idle probe answered ${res.statusCode}`);
    return performance.now() - t;
  };

  return {
    sims,
    capacities: o.capacities,
    ids: [],
    admitter,
    backendsFile,
    async idleServiceMs(calls = 7) {
      return Promise.all(
        pools.map(async (pool) => {
          await timedCall(pool); // warm-up (renders and caches the image)
          const times: number[] = [];
          for (let i = 0; i < calls; i++) times.push(await timedCall(pool));
          return median(times);
        }),
      );
    },
    done: () => ctx.redis.client.zcard(`${CLUSTER_PREFIX}:done`),
    startWorker: (name) =>
      startWorker({
        name,
        redisUrl: ctx.redis.url,
        prefix: CLUSTER_PREFIX,
        dataDir: join(ctx.dir, name),
        logDir: ctx.logDir,
        redis: ctx.redis.client,
        extra: {
          BACKENDS_FILE: backendsFile,
          WORKER_CONCURRENCY: String(o.concurrency),
          HEALTH_INTERVAL_MS: String(o.healthIntervalMs),
        },
      }),
    async close() {
      await Promise.all(pools.map((p) => p.close()));
      for (const s of sims) await s.close();
    },
  };
}

/** Statuses of the given jobs (complete, error, queued, ...) → count. */
export async function statusCounts(
  ctx: BenchContext,
  ids: readonly string[],
): Promise<Record<string, number>> {
  const out: Record<string, number> = {};
  for (let i = 0; i < ids.length; i += 1000) {
    const pipe = ctx.redis.client.pipeline();
    for (const id of ids.slice(i, i + 1000)) pipe.hget(`${CLUSTER_PREFIX}:job:${id}`, "status");
    for (const [err, v] of (await pipe.exec()) ?? []) {
      if (err) throw err;
      const s = (v as string | null) ?? "missing";
      out[s] = (out[s] ?? 0) + 1;
    }
  }
  return out;
}
