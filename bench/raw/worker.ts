// The raw bound of the worker bench: a BullMQ worker with the same concurrency that forwards each
// job's KServe v2 body to the simulator with undici, reads the JSON answer and completes. Run as a
// child: env REDIS_URL, RAW_PREFIX, QUEUE, SIM_URL, MODEL, CONCURRENCY, JOBS; when JOBS jobs are
// done it stores {first, last, done, failed} (epoch ms of the first start and last completion) in
// the Redis key RESULT_KEY.
import { Worker, type Job } from "bullmq";
import { Redis } from "ioredis";
import { Pool } from "undici";

const concurrency = Number(process.env.CONCURRENCY ?? 16);
const jobs = Number(process.env.JOBS ?? 0);
const model = process.env.MODEL ?? "flux-schnell";
const sim = new URL(process.env.SIM_URL!);
const pool = new Pool(sim.origin, { connections: concurrency + 4, pipelining: 1, keepAliveTimeout: 10_000 });
const connection = new Redis(process.env.REDIS_URL!, {
  maxRetriesPerRequest: null,
  connectionName: "raw-worker",
});
const results = new Redis(process.env.REDIS_URL!, {
  maxRetriesPerRequest: null,
  connectionName: "raw-result",
});

let first = 0;
let last = 0;
let done = 0;
let failed = 0;

const worker = new Worker(
  process.env.QUEUE ?? "raw-render",
  async (job: Job<{ id: string }>) => {
    if (first === 0) first = Date.now();
    try {
      const res = await pool.request({
        path: `/v2/models/${model}/infer`,
        method: "POST",
        headers: {
          "content-type": "application/json",
          accept: "application/json",
          "x-request-id": job.data.id,
        },
        body: JSON.stringify(job.data),
        headersTimeout: 0,
        bodyTimeout: 0,
      });
      if (res.statusCode !== 200) {
        const text = await res.body.text();
        throw new Error(`backend answered ${res.statusCode}: ${text.slice(0, 200)}`);
      }
      const answer = (await res.body.json()) as { outputs?: unknown[] };
      if (!Array.isArray(answer.outputs)) throw new Error("no outputs");
      return { ok: true };
    } catch (err) {
      failed++;
      throw err;
    } finally {
      last = Date.now();
      done++;
      if (done === jobs) {
        await results.set(
          process.env.RESULT_KEY ?? "raw:result",
          JSON.stringify({ first, last, done, failed }),
        );
      }
    }
  },
  {
    connection,
    prefix: process.env.RAW_PREFIX ?? "raw",
    concurrency,
    removeOnComplete: { count: 1000 },
    removeOnFail: { count: 5000 },
  },
);
worker.on("error", (err) => console.error(err));

const stop = () => {
  void worker
    .close()
    .then(() => pool.close())
    .then(() => Promise.all([connection.quit(), results.quit()]))
    .finally(() => process.exit(0));
};
process.on("SIGTERM", stop);
process.on("SIGINT", stop);
