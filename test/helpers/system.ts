// A whole render-gateway in this test process, wired by the same role functions as `start`:
// a real simulated backend (own port), a real worker service, the real API on a loopback port,
// all on the run's redis-server under a unique key prefix.
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Redis } from "ioredis";
import { pino, type Logger } from "pino";
import { expect } from "vitest";
import type { BackendConfig } from "../../src/config/backends.js";
import { systemClock } from "../../src/core/time.js";
import { signToken } from "../../src/api/auth.js";
import { createOutputHandover, OUTPUT_HANDOVER_BOUNDS } from "../../src/core/output-handover.js";
import { createSettleSignal } from "../../src/core/settle-signal.js";
import { createHeadSignal } from "../../src/core/head-signal.js";
import { createFsBlobStore } from "../../src/infra/fs-blob-store.js";
import { createRedisConnector } from "../../src/infra/redis-connector.js";
import { createBackendDirectory } from "../../src/queues/backend-directory.js";
import { createRuntime, type Runtime } from "../../src/main/runtime.js";
import {
  defaultSimBackends,
  loadKeys,
  loadSettings,
  type Keys,
  type Settings,
} from "../../src/main/settings.js";
import { startSimRole } from "../../src/main/sim-role.js";
import { startWorkerRole } from "../../src/main/worker-role.js";
import { startApiRole } from "../../src/main/api-role.js";
import { processMetricsFor, startMetricsPublisher } from "../../src/main/metrics.js";
import type { ProcessMetrics } from "../../src/infra/metrics.js";
import type { SimServer } from "../../src/sim/server.js";
import type { WsStats } from "../../src/api/ws/gateway.js";
import type { WorkerService } from "../../src/workers/worker-service.js";
import { until as poll } from "./processes.js";
import { redisUrl, testRedis, type TestRedis } from "./redis.js";

export const TEST_SECRET = "test-secret-0123456789-abcdefghijklmnop";

export interface SystemOptions {
  readonly env?: Readonly<Record<string, string>>;
  /** Backends for the worker; by default the simulator's per-engine entries. */
  readonly backends?: (simUrl: string) => BackendConfig[];
  readonly worker?: boolean;
  /**
   * Run one worker role per pool named here (WORKER_POOL; "default" for the unnamed pool) instead of
   * the one worker; needs POOLS_FILE in `env`.
   */
  readonly workerPools?: readonly string[];
  readonly api?: boolean;
  /** Also run the pipeline role (outbox relay, billing, webhooks, audit); default false. */
  readonly pipeline?: boolean;
  /** The logger of every role (default: silent, or TEST_LOG_LEVEL). */
  readonly logger?: Logger;
}

export interface TestSystem {
  readonly url: string;
  readonly sim: SimServer;
  readonly worker?: WorkerService;
  readonly redis: TestRedis;
  readonly settings: Settings;
  readonly keys: Keys;
  readonly dataDir: string;
  /** The process's metrics, shared by its roles as in `start` (published every METRICS_INTERVAL_MS). */
  readonly metrics: ProcessMetrics;
  /** Listeners of the API's event hub (open SSE streams, sync waits, WebSocket streams). */
  listeners(): number;
  /** The API's WebSocket counters (connections, backpressure). */
  wsStats(): WsStats;
  /** A token of one of the system's tiers (TIERS_FILE or the built-in ones); default `pro`. */
  token(customer: string, opts?: { tier?: string; admin?: boolean }): Promise<string>;
  /** fetch against the API with a bearer token. */
  call(path: string, init?: RequestInit & { token?: string }): Promise<Response>;
  /** The API app's own fetch, in this process without a socket (`app.request()`-style). */
  fetch(req: Request): Promise<Response>;
  /** The API app's registered routes (method and Hono path; `app.use` entries have method ALL). */
  routes(): readonly { readonly method: string; readonly path: string }[];
  close(): Promise<void>;
}

export async function startSystem(opts: SystemOptions = {}): Promise<TestSystem> {
  const redis = testRedis();
  const dataDir = mkdtempSync(join(tmpdir(), "rg-sys-"));
  const envVars = {
    DATA_DIR: dataDir,
    REDIS_URL: redisUrl(),
    REDIS_PREFIX: redis.prefix,
    PORT: "0",
    HOST: "127.0.0.1",
    LOG_LEVEL: "silent",
    JWT_SECRET: TEST_SECRET,
    SIM_STEP_MS: "2",
    LOCK_MS: "3000",
    STALLED_INTERVAL_MS: "500",
    HEALTH_INTERVAL_MS: "500",
    METRICS_INTERVAL_MS: "250",
    ...opts.env,
  };
  const settings = loadSettings(envVars);
  const logger = opts.logger ?? pino({ level: process.env.TEST_LOG_LEVEL ?? "silent" });
  const runtime: Runtime = createRuntime(logger);
  const keys = await loadKeys(settings);
  const blobs = createFsBlobStore({ root: join(dataDir, "cas") });
  // Roles api and worker share it as in `start`: sync outputs are handed over in memory.
  const clock = systemClock;
  const handover = createOutputHandover({ clock, ...OUTPUT_HANDOVER_BOUNDS });
  // And a worker's terminal settles wake the API's waiters directly, and the API's admissions at the
  // head of the queue start the worker's pass directly, as in `start`.
  const settles = createSettleSignal();
  const heads = createHeadSignal();
  const redisConnector = createRedisConnector(
    { kind: "url", url: settings.env.REDIS_URL! },
    { commandTimeoutMs: settings.env.REDIS_COMMAND_TIMEOUT_MS, logger },
  );
  const metrics = processMetricsFor([
    ...(opts.api === false ? [] : ["api"]),
    ...(opts.worker === false ? [] : ["worker"]),
    ...(opts.pipeline === true ? ["pipeline"] : []),
    "sim",
  ]);
  let url = "";
  let hubSize = () => 0;
  let routes: readonly { method: string; path: string }[] = [];
  let wsStats = (): WsStats => {
    throw new Error("the system runs no API");
  };
  let appFetch: (req: Request) => Response | Promise<Response> = () => {
    throw new Error("the system runs no API");
  };
  let worker: WorkerService | undefined;
  let sim: SimServer;
  try {
    sim = await startSimRole({ env: settings.env, dataDir, runtime, logger, defaultPort: 0 });
    if (opts.worker !== false) {
      const backends =
        opts.backends?.(sim.url) ?? defaultSimBackends(settings.catalog, sim.url, settings.env.SIM_CAPACITY);
      for (const pool of opts.workerPools ?? [undefined]) {
        worker = await startWorkerRole({
          settings: pool === undefined ? settings : loadSettings({ ...envVars, WORKER_POOL: pool }),
          redisConnector,
          backends,
          runtime,
          logger,
          clock,
          blobs,
          handover,
          settles,
          heads,
          metrics,
        });
      }
    }
    if (opts.api !== false) {
      const api = await startApiRole({
        settings,
        keys,
        redisConnector,
        runtime,
        logger,
        clock,
        blobs,
        handover,
        settles,
        heads,
        metrics,
      });
      url = api.url;
      hubSize = () => api.hub.size();
      wsStats = () => api.ws.stats();
      appFetch = api.fetch;
      routes = api.routes;
    }
    if (opts.pipeline === true) {
      const { startPipelineRole } = await import("../../src/main/pipeline-role.js");
      await startPipelineRole({
        settings,
        keys,
        redisConnector,
        runtime,
        logger,
        clock,
        blobs,
        metrics,
      });
    }
    await startMetricsPublisher({
      metrics,
      redisConnector,
      prefix: settings.env.REDIS_PREFIX,
      intervalMs: settings.env.METRICS_INTERVAL_MS,
      runtime,
      logger,
      clock,
    });
  } catch (err) {
    await runtime.shutdown("setup failed");
    throw err;
  }
  const token = (customer: string, o: { tier?: string; admin?: boolean } = {}) =>
    signToken({
      secret: keys.jwt!,
      customerId: customer,
      tier: o.tier ?? "pro",
      tiers: Object.keys(settings.tiers),
      admin: o.admin ?? false,
      ttlS: 3600,
      clock,
    });
  return {
    url,
    sim,
    ...(worker ? { worker } : {}),
    redis,
    settings,
    keys,
    dataDir,
    metrics,
    listeners: () => hubSize(),
    wsStats: () => wsStats(),
    token,
    async call(path, init = {}) {
      const headers = new Headers(init.headers);
      if (init.token !== undefined) headers.set("authorization", `Bearer ${init.token}`);
      if (init.body !== undefined && !headers.has("content-type"))
        headers.set("content-type", "application/json");
      return fetch(url + path, { ...init, headers, redirect: "manual" });
    },
    async fetch(req) {
      return appFetch(req);
    },
    routes: () => routes,
    async close() {
      await runtime.shutdown("test done");
      await redis.cleanup();
      rmSync(dataDir, { recursive: true, force: true });
    },
  };
}

/** Reads an SSE response into events until `until` returns true or the stream ends. */
export async function readSse(
  res: Response,
  until: (ev: { id?: string; event: string; data: string }) => boolean = () => false,
  timeoutMs = 15_000,
): Promise<{ id?: string; event: string; data: string }[]> {
  const reader = res.body!.getReader();
  const decoder = new TextDecoder();
  const events: { id?: string; event: string; data: string }[] = [];
  let buf = "";
  const timedOut = () => new Error(`SSE timeout; got ${JSON.stringify(events.map((e) => e.event))}`);
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<never>((_, rej) => {
    timer = setTimeout(() => rej(timedOut()), timeoutMs);
  });
  try {
    for (;;) {
      const chunk = await Promise.race([reader.read(), deadline]);
      if (chunk.done) return events;
      buf += decoder.decode(chunk.value, { stream: true });
      let i: number;
      while ((i = buf.indexOf("\n\n")) >= 0) {
        const frame = buf.slice(0, i);
        buf = buf.slice(i + 2);
        const ev: { id?: string; event: string; data: string } = { event: "message", data: "" };
        const data: string[] = [];
        for (const line of frame.split("\n")) {
          if (line.startsWith(":")) continue;
          const [k, ...rest] = line.split(":");
          const v = rest.join(":").replace(/^ /, "");
          if (k === "id") ev.id = v;
          else if (k === "event") ev.event = v;
          else if (k === "data") data.push(v);
        }
        if (data.length === 0 && ev.id === undefined) continue;
        ev.data = data.join("\n");
        events.push(ev);
        if (until(ev)) return events;
      }
    }
  } finally {
    clearTimeout(timer);
    await reader.cancel().catch(() => undefined);
  }
}

/** Polls `fn` until it returns a truthy value (every 50 ms, 15 s at most by default). */
export function waitFor<T>(
  fn: () => Promise<T | undefined | false>,
  timeoutMs = 15_000,
  intervalMs = 50,
): Promise<T> {
  return poll("waitFor", async () => (await fn()) || undefined, timeoutMs, intervalMs);
}

/**
 * Takes the simulator down (`down: true`) or brings it back, and waits until the worker's health
 * poll has seen it: every backend the worker publishes is reported unhealthy (or healthy). It first
 * waits for the report of the state before the change, so that a report left from before cannot be
 * taken for one after it (a report of a change can only come from a poll made after the change).
 */
export async function setSimDown(
  sys: TestSystem,
  down: boolean,
  /** A client of the system's Redis, when its REDIS_URL is not the run's redis-server. */
  client: Redis = sys.redis.client,
): Promise<void> {
  const directory = createBackendDirectory(client, sys.redis.prefix, Date.now);
  const reported = async (healthy: boolean) => {
    const backends = await directory.read(60_000);
    return backends.length > 0 && backends.every((b) => b.healthy === healthy);
  };
  await waitFor(() => reported(down));
  sys.sim.setConfig({ down });
  await waitFor(() => reported(!down));
}

/** A flux/schnell text-to-image request at the 512 format, without a prompt. */
export const FLUX_SCHNELL_512 = {
  modality: "image",
  family: "flux",
  model: "schnell",
  task: "t2i",
  format: "512",
} as const;

/** POST /queue with `body` as JSON; expects the 202 and returns the job's id. */
export async function queueJob(
  sys: TestSystem,
  token: string,
  body: Record<string, unknown>,
): Promise<string> {
  const res = await sys.call("/queue", { method: "POST", token, body: JSON.stringify(body) });
  expect(res.status).toBe(202);
  return ((await res.json()) as { id: string }).id;
}
