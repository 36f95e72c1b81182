// The setup of the utilisation and recovery benches: three simulated backends in three processes
// with different capacities and a fixed step time, a backends file listing them, jobs admitted
// with the scheduler, and our worker role started on top.
import { join } from "node:path";
import { performance } from "node:perf_hooks";
import { Pool } from "undici";
import { createAdmitter, workerBody, type Admitter } from "./admit.js";
import { startSim, startWorker, writeBackendsFile, type SimProcess } from "./gateway.js";
import type { BenchContext } from "./harness.js";
import { sleep, waitUntil, type Child } from "./proc.js";
import { median } from "./report.js";

const PREFIX = "{bench}";

/** The backends: capacities 2, 4 and 8, jobs of 10 steps × 10 ms, no streaming. */
export const CLUSTER = { capacities: [2, 4, 8], stepMs: 10, steps: 10, streaming: false } as const;
export const CAPACITY_TOTAL = CLUSTER.capacities.reduce((a, b) => a + b, 0);

export interface Cluster {
  readonly sims: readonly SimProcess[];
  readonly admitter: Admitter;
  /**
   * Per-job time of each sim when idle (median of `calls` sequential calls after a warm-up), ms,
   * and the bound it gives: Σ capacity ÷ per-job time, jobs/s.
   */
  idleBound(calls?: number): Promise<{ idleMs: number[]; jobsPerS: number }>;
  /** Jobs that reached a terminal state (ZCARD of the scheduler's retention set). */
  done(): Promise<number>;
  /** Jobs still queued. */
  queued(): Promise<number>;
  /** Statuses of the given jobs (complete, error, queued, ...) → count. */
  statuses(ids: readonly string[]): Promise<Record<string, number>>;
  /** Starts our worker role on the queued jobs; resolves once it completed one and `warmS` passed. */
  startWarmWorker(name: string, warmS: number): Promise<Child>;
  close(): Promise<void>;
}

export async function startCluster(
  ctx: BenchContext,
  o: { readonly concurrency: number; readonly healthIntervalMs: number },
): Promise<Cluster> {
  const sims: SimProcess[] = [];
  for (const [i, cap] of CLUSTER.capacities.entries()) {
    sims.push(
      await startSim({
        name: `sim-${i}-cap${cap}`,
        stepMs: CLUSTER.stepMs,
        capacity: cap,
        dataDir: join(ctx.dir, `sim-${i}`),
        logDir: ctx.logDir,
      }),
    );
  }
  const backendsFile = writeBackendsFile(
    ctx.dir,
    sims.map((s, i) => ({ id: `gpu-${i}`, url: s.url, capacity: CLUSTER.capacities[i]! })),
  );
  const admitter = createAdmitter({
    redis: ctx.redis.client,
    prefix: PREFIX,
    dataDir: join(ctx.dir, "admit"),
    body: workerBody(CLUSTER.steps),
    customerId: "bench-cluster",
  });
  const body = JSON.stringify(await admitter.inferBody("idle-probe"));
  const pools = sims.map((s) => new Pool(s.url, { connections: 1 }));

  const timedCall = async (pool: Pool) => {
    const t = performance.now();
    const res = await pool.request({
      method: "POST",
      path: "/v2/models/flux-schnell/infer",
      body,
      headers: { "content-type": "application/json" },
    });
    await res.body.text();
    if (res.statusCode !== 200) throw new Error(`idle probe answered ${res.statusCode}`);
    return performance.now() - t;
  };
  const done = () => ctx.redis.client.zcard(`${PREFIX}:done`);

  return {
    sims,
    admitter,
    async idleBound(calls = 7) {
      const idleMs = await Promise.all(
        pools.map(async (pool) => {
          await timedCall(pool); // warm-up (renders and caches the image)
          const times: number[] = [];
          for (let i = 0; i < calls; i++) times.push(await timedCall(pool));
          return median(times);
        }),
      );
      const jobsPerS = CLUSTER.capacities.reduce((sum, cap, i) => sum + cap / (idleMs[i]! / 1000), 0);
      return { idleMs, jobsPerS };
    },
    done,
    queued: () => ctx.redis.client.zcard(`${PREFIX}:q`),
    async statuses(ids) {
      const out: Record<string, number> = {};
      for (const [status] of await admitter.fields(ids, ["status"])) {
        const s = status ?? "missing";
        out[s] = (out[s] ?? 0) + 1;
      }
      return out;
    },
    async startWarmWorker(name, warmS) {
      const worker = await startWorker({
        name,
        redisUrl: ctx.redis.url,
        prefix: PREFIX,
        dataDir: join(ctx.dir, name),
        logDir: ctx.logDir,
        redis: ctx.redis.client,
        extra: {
          BACKENDS_FILE: backendsFile,
          WORKER_CONCURRENCY: String(o.concurrency),
          HEALTH_INTERVAL_MS: String(o.healthIntervalMs),
        },
      });
      await waitUntil("first completion", async () => (await done()) > 0, 30_000, 20, [worker]);
      await sleep(warmS * 1000);
      return worker;
    },
    async close() {
      await Promise.all(pools.map((p) => p.close()));
      for (const s of sims) await s.close();
    },
  };
}
