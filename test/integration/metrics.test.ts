// GET /metrics and the access log on real parts: the API, a worker and the simulator in this process
// (as `npm start` runs them: one process, one set of metrics, published to Redis and served back),
// the pipeline role for webhook deliveries, and an HTTPS receiver on loopback (the test CA). A second system
// without a worker keeps jobs queued (queue depth by tier and priority), requires METRICS_TOKEN and
// writes its log lines to a stream the test reads.
import { readFileSync } from "node:fs";
import { createServer, type Server } from "node:https";
import type { AddressInfo } from "node:net";
import { pino } from "pino";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createLogger } from "../../src/infra/logger.js";
import { startPipelineRole } from "../../src/main/pipeline-role.js";
import { createRuntime, type Runtime } from "../../src/main/runtime.js";
import { createFsBlobStore } from "../../src/infra/fs-blob-store.js";
import { createKeys } from "../../src/queues/keys.js";
import { redisUrl, testRedisConnector } from "../helpers/redis.js";
import { startFaultProxy } from "../helpers/tcp-proxy.js";
import { FLUX_SCHNELL_512, queueJob, startSystem, waitFor, type TestSystem } from "../helpers/system.js";
import { parsePrometheusText, samplesOf, sumOf, type Family } from "../helpers/prometheus-text.js";
import { join } from "node:path";

/** Every family GET /metrics holds (README "Metrics and logs"). */
const FAMILIES = [
  "rg_http_requests_total",
  "rg_http_request_duration_seconds",
  "rg_refusals_total",
  "rg_admissions_total",
  "rg_job_wait_seconds",
  "rg_attempt_duration_seconds",
  "rg_retries_total",
  "rg_job_errors_total",
  "rg_lease_reaps_total",
  "rg_breaker_state",
  "rg_breaker_transitions_total",
  "rg_worker_slots",
  "rg_worker_in_flight",
  "rg_webhook_deliveries_total",
  "rg_queue_depth",
  "rg_tenants_active",
  "rg_backend_in_flight",
  "rg_backend_capacity",
  "rg_backend_healthy",
  "rg_pipeline_backlog",
  "rg_pipeline_delayed",
  "rg_pipeline_oldest_seconds",
  "rg_process_info",
  "rg_process_snapshot_age_seconds",
  "rg_metrics_fleet_read_ok",
];

const METRICS_TOKEN = "metrics-token-for-tests-0123";
const PROMPT = "a secret harbour at dawn, prompt-text-7f3a";

let sys: TestSystem;
let queued: TestSystem;
let pipeline: Runtime | undefined;
let receiver: Server;
let hooks = 0;
const lines: string[] = [];

async function metricsOf(s: TestSystem, headers: Record<string, string> = {}): Promise<Map<string, Family>> {
  const res = await s.call("/metrics", { headers });
  expect(res.status).toBe(200);
  expect(res.headers.get("content-type")).toContain("text/plain; version=0.0.4");
  return parsePrometheusText(await res.text());
}

async function jobStatus(s: TestSystem, token: string, id: string): Promise<string> {
  const res = await s.call(`/jobs/${id}`, { token });
  return ((await res.json()) as { status: string }).status;
}

const TLS_DIR = join(import.meta.dirname, "fixtures", "tls");
const CA_FILE = join(TLS_DIR, "images-test.crt");

beforeAll(async () => {
  const tls = {
    cert: readFileSync(CA_FILE, "utf8"),
    key: readFileSync(join(TLS_DIR, "images-test.key"), "utf8"),
  };
  receiver = createServer(tls, (req, res) => {
    req.resume();
    req.on("end", () => {
      hooks += 1;
      res.writeHead(204).end();
    });
  });
  await new Promise<void>((r) => receiver.listen(0, "127.0.0.1", () => r()));
  const port = (receiver.address() as AddressInfo).port;
  sys = await startSystem({
    env: {
      WEBHOOK_ALLOW_PRIVATE: "true",
      OUTBOUND_ALLOWED_PORTS: String(port),
      OUTBOUND_CA_FILE: CA_FILE,
      JOB_ATTEMPTS: "2",
      BACKOFF_BASE_MS: "1",
      BACKOFF_MAX_MS: "5",
    },
  });
  const logger = pino({ level: "silent" });
  pipeline = createRuntime(logger);
  await startPipelineRole({
    settings: { ...sys.settings, env: { ...sys.settings.env, PUBLIC_URL: sys.url } },
    keys: sys.keys,
    redisConnector: testRedisConnector(),
    runtime: pipeline,
    logger,
    clock: Date.now,
    blobs: createFsBlobStore({ root: join(sys.dataDir, "cas") }),
    metrics: sys.metrics,
  });
  // The log lines of every role, as the process logger writes them (redaction included).
  const log = createLogger({
    level: "info",
    destination: { write: (line: string) => void lines.push(line) },
  });
  queued = await startSystem({ worker: false, logger: log, env: { METRICS_TOKEN } });
}, 60_000);

afterAll(async () => {
  await pipeline?.shutdown("test done");
  await queued?.close();
  await sys?.close();
  await new Promise<void>((r) => {
    receiver.close(() => r());
    receiver.closeAllConnections();
  });
});

describe("GET /metrics", () => {
  it("parses and holds every family after a small workload: jobs run, one fails, one is refused, a webhook", async () => {
    const pro = await sys.token("m-pro", { tier: "pro" });
    const free = await sys.token("m-free", { tier: "free" });
    const port = (receiver.address() as AddressInfo).port;
    const done = [
      await queueJob(sys, pro, { ...FLUX_SCHNELL_512, prompt: "one", priority: "high" }),
      await queueJob(sys, free, { ...FLUX_SCHNELL_512, prompt: "two", priority: "low" }),
      await queueJob(sys, pro, {
        ...FLUX_SCHNELL_512,
        prompt: "three",
        webhook: `https://127.0.0.1:${port}/hook`,
      }),
    ];
    const admin = await sys.token("m-admin", { admin: true });
    await waitFor(async () => {
      for (const id of done) if ((await jobStatus(sys, admin, id)) !== "complete") return false;
      return true;
    });
    // one fails: every call answered 500, two attempts (JOB_ATTEMPTS), then error
    sys.sim.setConfig({ failRate: 1 });
    const failed = await queueJob(sys, pro, { ...FLUX_SCHNELL_512, prompt: "four" });
    await waitFor(async () => (await jobStatus(sys, pro, failed)) === "error");
    sys.sim.setConfig({ failRate: 0 });
    // one is refused: 400 validation_error
    const refused = await sys.call("/queue", {
      method: "POST",
      token: pro,
      body: JSON.stringify({ steps: 4 }),
    });
    expect(refused.status).toBe(400);
    await waitFor(async () => hooks >= 1);

    // the worker's and the pipeline's series reach /metrics with the next publication
    const f = await waitFor(async () => {
      const got = await metricsOf(sys);
      const ready =
        sumOf(got, "rg_webhook_deliveries_total", { outcome: "delivered" }) >= 1 &&
        sumOf(got, "rg_job_errors_total", { cause: "backend_error" }) >= 1 &&
        sumOf(got, "rg_refusals_total", { route: "/queue", reason: "validation_error" }) >= 1;
      return ready && got;
    });
    for (const name of FAMILIES) expect(f.has(name), name).toBe(true);
    // one process: its series carry its id, its roles are named once
    expect(samplesOf(f, "rg_process_info").map((s) => s.labels)).toEqual([
      { process: sys.metrics.processId, roles: "api,worker,sim" },
    ]);
    expect(
      samplesOf(f, "rg_http_requests_total").every((s) => s.labels.process === sys.metrics.processId),
    ).toBe(true);
    expect(sumOf(f, "rg_metrics_fleet_read_ok")).toBe(1);
    expect(sumOf(f, "rg_http_requests_total", { method: "POST", route: "/queue", status: "202" })).toBe(4);
    expect(
      sumOf(f, "rg_http_requests_total", { method: "GET", route: "/jobs/:id", status: "200" }),
    ).toBeGreaterThan(0);
    expect(sumOf(f, "rg_admissions_total", { mode: "async", model: "flux/schnell", tier: "pro" })).toBe(3);
    expect(sumOf(f, "rg_admissions_total", { tier: "free", priority: "low" })).toBe(1);
    // four jobs started once each: four waits; five attempts (the failed job's two)
    expect(sumOf(f, "rg_job_wait_seconds", { model: "flux/schnell" }, "rg_job_wait_seconds_count")).toBe(4);
    expect(
      sumOf(f, "rg_attempt_duration_seconds", { outcome: "complete" }, "rg_attempt_duration_seconds_count"),
    ).toBe(3);
    expect(
      sumOf(f, "rg_attempt_duration_seconds", { outcome: "retry" }, "rg_attempt_duration_seconds_count"),
    ).toBe(2);
    expect(sumOf(f, "rg_retries_total", { kind: "retry", cause: "backend_error" })).toBe(1);
    expect(sumOf(f, "rg_job_errors_total", { cause: "backend_error" })).toBe(1);
    expect(sumOf(f, "rg_lease_reaps_total")).toBe(0);
    const backends = samplesOf(f, "rg_backend_capacity");
    expect(backends.length).toBeGreaterThan(0);
    for (const b of backends) {
      expect(sumOf(f, "rg_backend_healthy", { backend: b.labels.backend! })).toBe(1);
      expect(sumOf(f, "rg_breaker_state", { backend: b.labels.backend! })).toBe(0);
    }
    expect(sumOf(f, "rg_worker_slots")).toBeGreaterThan(0);
    for (const queue of ["outbox", "billing", "webhooks", "audit", "audit_log"]) {
      expect(samplesOf(f, "rg_pipeline_backlog", { queue }), queue).toHaveLength(1);
    }
    // no label holds a customer id
    for (const family of f.values()) {
      for (const s of family.samples) expect(JSON.stringify(s.labels)).not.toMatch(/m-pro|m-free/);
    }
  });

  it("labels a request by its route pattern: 200 random paths give a handful of route values", async () => {
    const token = await sys.token("m-paths");
    for (let i = 0; i < 200; i++) {
      const r = Math.random().toString(36).slice(2);
      const path = [`/x${r}`, `/jobs/j_${r}/webhooks/${r}/y`, `/objects/${r}`, `/image/${r}/${r}`][i % 4]!;
      const res = await sys.call(path, { method: i % 3 === 0 ? "POST" : "GET", token });
      expect(res.status).toBeGreaterThanOrEqual(400);
    }
    const f = await waitFor(async () => {
      const got = await metricsOf(sys);
      return sumOf(got, "rg_http_requests_total", { route: "unmatched" }) >= 50 && got;
    });
    const routes = new Set(samplesOf(f, "rg_http_requests_total").map((s) => s.labels.route));
    expect(routes.size).toBeLessThanOrEqual(12);
    for (const route of routes) expect(route).not.toMatch(/j_[a-z0-9]{6}|\/x[a-z0-9]{6}/);
    expect(sumOf(f, "rg_refusals_total", { route: "unmatched", reason: "not_found" })).toBeGreaterThanOrEqual(
      50,
    );
  });
});

describe("queue depth, pipeline lag and METRICS_TOKEN (no worker: jobs stay queued)", () => {
  const auth = { authorization: `Bearer ${METRICS_TOKEN}` };

  it("counts queued jobs by priority and tier, and follows a cancel", async () => {
    const pro = await queued.token("q-pro", { tier: "pro" });
    const free = await queued.token("q-free", { tier: "free" });
    await queueJob(queued, pro, { ...FLUX_SCHNELL_512, prompt: "a", priority: "high" });
    const cancelled = await queueJob(queued, pro, { ...FLUX_SCHNELL_512, prompt: "b", priority: "high" });
    await queueJob(queued, free, { ...FLUX_SCHNELL_512, prompt: "c", priority: "low" });
    await queueJob(queued, free, { ...FLUX_SCHNELL_512, prompt: "d" });
    const before = await waitFor(async () => {
      const got = await metricsOf(queued, auth);
      return sumOf(got, "rg_queue_depth") === 4 && got;
    });
    expect(sumOf(before, "rg_queue_depth", { priority: "high", tier: "pro" })).toBe(2);
    expect(sumOf(before, "rg_queue_depth", { priority: "low", tier: "free" })).toBe(1);
    expect(sumOf(before, "rg_queue_depth", { priority: "normal", tier: "free" })).toBe(1);
    expect(sumOf(before, "rg_tenants_active")).toBe(2);

    expect((await queued.call(`/jobs/${cancelled}`, { method: "DELETE", token: pro })).status).toBe(204);
    const after = await waitFor(async () => {
      const got = await metricsOf(queued, auth);
      return sumOf(got, "rg_queue_depth") === 3 && got;
    });
    expect(sumOf(after, "rg_queue_depth", { priority: "high", tier: "pro" })).toBe(1);
    // the cancel's terminal event waits in the outbox: no pipeline runs here
    expect(sumOf(after, "rg_pipeline_backlog", { queue: "outbox" })).toBe(1);
    expect(sumOf(after, "rg_pipeline_oldest_seconds", { queue: "outbox" })).toBeGreaterThanOrEqual(0);
    // the counters the gauge reads are the scheduler's own
    const fair = await queued.redis.client.hgetall(createKeys(queued.redis.prefix).fair);
    expect(Number(fair["q:pro:high"])).toBe(1);
  });

  it("answers 401 without the token or with a wrong one, 200 with it", async () => {
    for (const headers of [
      {},
      { authorization: "Bearer wrong-token-0123456789" },
      { authorization: METRICS_TOKEN },
    ]) {
      const res = await queued.call("/metrics", { headers });
      expect(res.status, JSON.stringify(headers)).toBe(401);
      expect(res.headers.get("www-authenticate")).toContain("Bearer");
      expect(((await res.json()) as { error: string }).error).toBe("unauthorized");
    }
    expect((await queued.call("/metrics", { headers: auth })).status).toBe(200);
    // without METRICS_TOKEN the route is open
    expect((await sys.call("/metrics")).status).toBe(200);
  });
});

describe("GET /metrics while Redis does not answer", () => {
  it("answers with the process's own series and rg_metrics_fleet_read_ok 0, and with the fleet again after", async () => {
    const proxy = await startFaultProxy(redisUrl());
    const s = await startSystem({
      worker: false,
      env: { REDIS_URL: proxy.url, REDIS_COMMAND_TIMEOUT_MS: "300" },
    });
    try {
      // the API's connection (the one /metrics reads the fleet on) stops answering before its first scrape
      const hold = proxy.holdConnections("rg-api");
      try {
        const f = await metricsOf(s);
        expect(sumOf(f, "rg_metrics_fleet_read_ok")).toBe(0);
        expect(f.has("rg_queue_depth")).toBe(false);
        expect(samplesOf(f, "rg_process_info").map((x) => x.labels.process)).toEqual([s.metrics.processId]);
      } finally {
        hold.release();
      }
      // the follow-up queues' getters, first made while Redis was away, are made anew
      const g = await waitFor(async () => {
        const got = await metricsOf(s);
        return sumOf(got, "rg_metrics_fleet_read_ok") === 1 && got;
      });
      expect(samplesOf(g, "rg_pipeline_backlog", { queue: "billing" })).toHaveLength(1);
      expect(samplesOf(g, "rg_process_info").map((x) => x.labels.process)).toEqual([s.metrics.processId]);
    } finally {
      await s.close();
      await proxy.close();
    }
  });
});

describe("the access log", () => {
  it("writes one line per request with its id, customer, route, status and time, and never a token or prompt", async () => {
    const token = await queued.token("log-cust", { tier: "pro" });
    const sent: {
      id: string;
      path: string;
      method: string;
      token?: string;
      body?: string;
      status: number;
    }[] = [];
    const id = (n: number) => `req_accesslog${String(n).padStart(4, "0")}`;
    const job = await queued.call("/queue", {
      method: "POST",
      token,
      headers: { "x-request-id": id(1) },
      body: JSON.stringify({ ...FLUX_SCHNELL_512, prompt: PROMPT }),
    });
    expect(job.status).toBe(202);
    const jobId = ((await job.json()) as { id: string }).id;
    sent.push({ id: id(1), path: "/queue", method: "POST", status: 202 });
    const more: [string, string, string | undefined, number][] = [
      ["GET", `/jobs/${jobId}`, token, 200],
      ["GET", `/jobs/${jobId}`, "not-a-token", 401],
      ["GET", "/no/such/path", token, 404],
      ["GET", "/health", undefined, 200],
      ["GET", "/metrics", METRICS_TOKEN, 200],
    ];
    for (const [n, [method, path, bearer, status]] of more.entries()) {
      const res = await queued.call(path, {
        method,
        headers: { "x-request-id": id(n + 2) },
        ...(bearer === undefined ? {} : { token: bearer }),
      });
      expect(res.status, path).toBe(status);
      await res.arrayBuffer();
      sent.push({ id: id(n + 2), path, method, status });
    }
    const entries = await waitFor(async () => {
      const parsed = lines.map((l) => JSON.parse(l) as Record<string, unknown>);
      const mine = parsed.filter(
        (e) => e.msg === "request" && String(e.requestId).startsWith("req_accesslog"),
      );
      return mine.length >= sent.length && mine;
    });
    for (const s of sent) {
      const of = entries.filter((e) => e.requestId === s.id);
      expect(of, s.path).toHaveLength(1);
      const e = of[0]!;
      expect(e.level).toBe(30);
      expect([e.method, e.status]).toEqual([s.method, s.status]);
      expect(typeof e.ms).toBe("number");
      expect(typeof e.route).toBe("string");
    }
    const byId = (n: number) => entries.find((e) => e.requestId === id(n))!;
    expect([byId(1).route, byId(1).customer]).toEqual(["/queue", "log-cust"]);
    expect([byId(2).route, byId(2).customer]).toEqual(["/jobs/:id", "log-cust"]);
    expect([byId(3).route, byId(3).code, byId(3).customer]).toEqual(["/jobs/:id", "unauthorized", undefined]);
    expect([byId(4).route, byId(4).code]).toEqual(["unmatched", "not_found"]);
    // nothing any role logged holds a credential or the prompt
    for (const line of lines) {
      for (const secret of [token, METRICS_TOKEN, "not-a-token", "Bearer", PROMPT])
        expect(line).not.toContain(secret);
    }
  });
});
