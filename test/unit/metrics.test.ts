// The metrics' pieces without Redis: the hot-path series print exactly as prom-client's own metrics
// do, snapshots merge with a `process` label per series, a bad snapshot is left out, the /metrics
// token check, and the text reader the system tests rely on refuses what is not the format.
import { Counter, Histogram, Registry } from "prom-client";
import { describe, expect, it } from "vitest";
import { createHotCounter, createHotHistogram } from "../../src/infra/metrics-hot.js";
import { exposition, parseSnapshot, type MetricJson } from "../../src/infra/metrics-exposition.js";
import { createProcessMetrics, HTTP_SECONDS_BUCKETS, processSeries } from "../../src/infra/metrics.js";
import { bearerMatches } from "../../src/api/routes/metrics.js";
import { parsePrometheusText, samplesOf, sumOf } from "../helpers/prometheus-text.js";

/** Observations with values on, between and beyond the bounds, over three label sets. */
const OBSERVATIONS: [string, string, number][] = [
  ["GET", "/jobs/:id", 0.0004],
  ["GET", "/jobs/:id", 0.001],
  ["GET", "/jobs/:id", 0.0011],
  ["POST", "/queue", 0.02],
  ["POST", "/queue", 61],
  ["POST", "/queue", 2.5],
  ["HEAD", "/health", 0],
];

async function promClientText(): Promise<string> {
  const registry = new Registry();
  const c = new Counter({
    name: "t_total",
    help: "h",
    labelNames: ["method", "route"],
    registers: [registry],
  });
  const h = new Histogram({
    name: "t_seconds",
    help: "h",
    labelNames: ["method", "route"],
    buckets: HTTP_SECONDS_BUCKETS,
    registers: [registry],
  });
  for (const [method, route, v] of OBSERVATIONS) {
    c.inc({ method, route });
    h.observe({ method, route }, v);
  }
  return exposition([(await registry.getMetricsAsJSON()) as unknown as MetricJson[]]);
}

async function hotText(): Promise<string> {
  const c = createHotCounter({ name: "t_total", help: "h" });
  const h = createHotHistogram({ name: "t_seconds", help: "h", buckets: HTTP_SECONDS_BUCKETS });
  for (const [method, route, v] of OBSERVATIONS) {
    c.series(`${method} ${route}`, () => ({ method, route })).value += 1;
    h.series(`${method} ${route}`, () => ({ method, route })).observe(v);
  }
  return exposition([[c.json(), h.json()]]);
}

describe("hot-path series", () => {
  it("print exactly as prom-client's counter and histogram for the same observations", async () => {
    const ours = await hotText();
    expect(ours).toBe(await promClientText());
    const families = parsePrometheusText(ours);
    expect(sumOf(families, "t_total", { route: "/queue" })).toBe(3);
    // 61 s is beyond every bound: counted in +Inf only
    expect(
      samplesOf(families, "t_seconds", { route: "/queue", le: "60" }, "t_seconds_bucket")[0]!.value,
    ).toBe(2);
    expect(
      samplesOf(families, "t_seconds", { route: "/queue", le: "+Inf" }, "t_seconds_bucket")[0]!.value,
    ).toBe(3);
  });
});

describe("process snapshots", () => {
  it("merge into one text, every series labelled with its process, and an info series per process", async () => {
    const a = createProcessMetrics({ processId: "host-1-aaaaaa", roles: "api" });
    const b = createProcessMetrics({ processId: "host-2-bbbbbb", roles: "api,worker" });
    a.api().request("GET", "/jobs/:id", 200, 0.002, undefined);
    b.api().request("GET", "/jobs/:id", 200, 0.003, undefined);
    b.api().request("POST", "/queue", 400, 0.001, "validation_error");
    b.api().request("BREW", "/queue", 405, 0.001, "method_not_allowed");
    const w = b.worker({
      slots: 4,
      inFlight: () => new Map([["gpu-a", 2]]),
      breakers: () => ({ "gpu-a": "open" }),
    });
    w.attemptStarted("flux/schnell", 1500);
    w.attemptEnded("flux/schnell", "retry", 800);
    w.settled("retry", "backend_error", true);
    w.settled("failed", "invalid_request", false);
    w.reaped(2);
    const now = 1_000_000;
    const text = await exposition(processSeries([await a.snapshot(now - 500), await b.snapshot(now)], now));
    const f = parsePrometheusText(text);

    expect(
      samplesOf(f, "rg_http_requests_total")
        .map((s) => s.labels.process)
        .sort(),
    ).toEqual(["host-1-aaaaaa", "host-2-bbbbbb", "host-2-bbbbbb", "host-2-bbbbbb"]);
    expect(sumOf(f, "rg_http_requests_total", { route: "/jobs/:id", status: "200" })).toBe(2);
    // a method outside the usual ones is `other`: the label takes a bounded set of values
    expect(sumOf(f, "rg_http_requests_total", { method: "other" })).toBe(1);
    expect(sumOf(f, "rg_refusals_total", { route: "/queue", reason: "validation_error" })).toBe(1);
    expect(samplesOf(f, "rg_process_info").map((s) => s.labels)).toEqual([
      { process: "host-1-aaaaaa", roles: "api" },
      { process: "host-2-bbbbbb", roles: "api,worker" },
    ]);
    expect(sumOf(f, "rg_process_snapshot_age_seconds", { process: "host-1-aaaaaa" })).toBe(0.5);
    // the worker's families are b's alone
    expect(samplesOf(f, "rg_worker_slots").map((s) => [s.labels.process, s.value])).toEqual([
      ["host-2-bbbbbb", 4],
    ]);
    expect(sumOf(f, "rg_worker_in_flight", { backend: "gpu-a" })).toBe(2);
    expect(sumOf(f, "rg_breaker_state", { backend: "gpu-a" })).toBe(2);
    expect(sumOf(f, "rg_job_wait_seconds", { model: "flux/schnell" }, "rg_job_wait_seconds_sum")).toBe(1.5);
    expect(sumOf(f, "rg_retries_total", { kind: "retry", cause: "backend_error" })).toBe(1);
    expect(sumOf(f, "rg_job_errors_total", { cause: "invalid_request" })).toBe(1);
    expect(sumOf(f, "rg_lease_reaps_total")).toBe(2);
    expect(f.has("rg_webhook_deliveries_total")).toBe(false);
  });

  it("are read back as written, and a snapshot that is not one is left out", async () => {
    const m = createProcessMetrics({ processId: "p1", roles: "pipeline" });
    m.webhooks().delivery("delivered");
    const good = await m.snapshot(42);
    expect(parseSnapshot(JSON.stringify(good))).toEqual(good);
    for (const bad of [
      "not json",
      "null",
      JSON.stringify({ ...good, process: 7 }),
      JSON.stringify({ ...good, at: "yesterday" }),
      JSON.stringify({ ...good, metrics: {} }),
    ]) {
      expect(parseSnapshot(bad), bad).toBeUndefined();
    }
    // a family with a name the format does not allow, or a sample without a number, is dropped alone
    const mixed = parseSnapshot(
      JSON.stringify({
        ...good,
        metrics: [
          ...good.metrics,
          { name: "bad name", help: "x", type: "counter", values: [] },
          { name: "rg_x", help: "x", type: "counter", values: [{ labels: {}, value: "1" }] },
        ],
      }),
    );
    expect(mixed?.metrics.map((x) => x.name)).toEqual(good.metrics.map((x) => x.name));
  });
});

describe("the /metrics token", () => {
  const token = "metrics-token-0123456789";
  it.each([
    [undefined, false],
    ["", false],
    [`Bearer ${token}`, true],
    [`bearer ${token}`, true],
    [`Bearer  ${token} `, true],
    [`Bearer ${token}x`, false],
    [`Bearer ${token.slice(1)}`, false],
    [`Basic ${token}`, false],
    [token, false],
    [`Bearer ${"a".repeat(2000)}`, false],
  ])("%j → %s", (header, ok) => {
    expect(bearerMatches(header, token)).toBe(ok);
  });
});

describe("the text reader of the tests", () => {
  it("refuses what is not the format", () => {
    for (const bad of [
      "rg_x 1",
      "# TYPE rg_x counter\nrg_y 1",
      "# TYPE rg_x counter\nrg_x{a=1} 1",
      "# TYPE rg_x counter\nrg_x one",
      "# TYPE rg_x histogram\nrg_x_total 1",
      "# TYPE rg_x counter\n# TYPE rg_x counter",
    ]) {
      expect(() => parsePrometheusText(bad), bad).toThrow();
    }
    expect(
      parsePrometheusText('# HELP rg_x h\n# TYPE rg_x gauge\nrg_x{a="q\\"",b="c"} 1.5e3').get("rg_x"),
    ).toEqual({
      name: "rg_x",
      type: "gauge",
      help: "h",
      samples: [{ name: "rg_x", labels: { a: 'q"', b: "c" }, value: 1500 }],
    });
  });
});
