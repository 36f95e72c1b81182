// The raw bound of the worker benches: a BullMQ queue of the KServe v2 bodies our worker would send,
// drained by bench/raw/worker.ts (a bare BullMQ worker forwarding each body to the sim with undici).
import { join } from "node:path";
import { Queue } from "bullmq";
import { Redis } from "ioredis";
import type { Admitter } from "./admit.js";
import { nodeArgs } from "./gateway.js";
import { baseEnv, PROJECT_ROOT, spawnTs, waitForFile, waitUntil, type Child } from "./proc.js";

const PREFIX = "raww";
const QUEUE = "raw-render";
const RESULT_KEY = "raw:result";

/** What the raw worker reports once done: epoch ms of its first start and last completion, counts. */
export interface RawResult {
  readonly first: number;
  readonly last: number;
  readonly done: number;
  readonly failed: number;
}

export interface RawWorkerBound {
  /** The queue the raw worker drains (its connection is named `raw-queue`). */
  readonly queue: Queue;
  /** Queues `jobs` bodies for the raw worker (job ids `raw_<tag>_<n>` in the bodies). */
  fill(jobs: number, tag: string): Promise<void>;
  /**
   * Starts the raw worker on `jobs` queued jobs (the result key must be absent: flush first) and
   * resolves once it reported them done; the process keeps running until stopped.
   */
  run(name: string, jobs: number): Promise<{ child: Child; result: RawResult }>;
  close(): Promise<void>;
}

export function createRawWorkerBound(o: {
  redisUrl: string;
  /** The bench's client, polled for the result. */
  redis: Redis;
  simUrl: string;
  concurrency: number;
  admitter: Admitter;
  logDir: string;
}): RawWorkerBound {
  const connection = new Redis(o.redisUrl, { maxRetriesPerRequest: null, connectionName: "raw-queue" });
  connection.on("error", () => undefined);
  const queue = new Queue(QUEUE, { connection, prefix: PREFIX });
  return {
    queue,
    async fill(jobs, tag) {
      const batch = 500;
      for (let i = 0; i < jobs; i += batch) {
        const items = await Promise.all(
          Array.from({ length: Math.min(batch, jobs - i) }, async (_, k) => ({
            name: "render",
            data: await o.admitter.inferBody(`raw_${tag}_${i + k}`),
          })),
        );
        await queue.addBulk(items);
      }
    },
    async run(name, jobs) {
      const child = spawnTs({
        name,
        file: join(PROJECT_ROOT, "bench/raw/worker.ts"),
        env: baseEnv({
          REDIS_URL: o.redisUrl,
          RAW_PREFIX: PREFIX,
          QUEUE,
          SIM_URL: o.simUrl,
          CONCURRENCY: String(o.concurrency),
          JOBS: String(jobs),
          RESULT_KEY,
        }),
        logDir: o.logDir,
        nodeArgs: nodeArgs(name),
      });
      const text = await waitUntil(
        "raw jobs to finish",
        async () => (await o.redis.get(RESULT_KEY)) ?? undefined,
        120_000,
        20,
        [child],
      );
      return { child, result: JSON.parse(text) as RawResult };
    },
    async close() {
      await queue.close();
      connection.disconnect();
    },
  };
}

/**
 * The raw bound of the enqueue benches: a bare Hono route doing only a prioritized BullMQ
 * `queue.add` → 202 (bench/raw/enqueue-server.ts), on `prefix`; resolves with its URL once it listens.
 */
export async function startRawEnqueue(o: {
  redisUrl: string;
  prefix: string;
  dir: string;
  logDir: string;
}): Promise<{ child: Child; url: string }> {
  const urlFile = join(o.dir, "raw.url");
  const child = spawnTs({
    name: "raw-enqueue",
    file: join(PROJECT_ROOT, "bench/raw/enqueue-server.ts"),
    env: baseEnv({ REDIS_URL: o.redisUrl, RAW_PREFIX: o.prefix, URL_FILE: urlFile }),
    logDir: o.logDir,
    nodeArgs: nodeArgs("raw-enqueue"),
  });
  return { child, url: await waitForFile(urlFile, child) };
}
