// Metrics across processes: `start --roles api` and `start --roles worker` as separate processes (a
// worker has no HTTP server). The worker publishes its series to Redis; the API's GET /metrics serves
// them, labelled with the worker's process id, and they are gone once the worker is killed and its
// last snapshot expires (3 × METRICS_INTERVAL_MS after it was written).
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createKeys } from "../../src/queues/keys.js";
import { SNAPSHOT_LIFETIME_INTERVALS } from "../../src/main/metrics.js";
import {
  E2eHarness,
  call,
  foxRequest,
  submitJob,
  token,
  until,
  waitForModel,
  waitTerminal,
  type CliProcess,
  type Gateway,
} from "../helpers/processes.js";
import { parsePrometheusText, samplesOf, sumOf, type Family } from "../helpers/prometheus-text.js";

const INTERVAL_MS = 300;

let h: E2eHarness;
let api: Gateway;
let worker: CliProcess;
let bearer: string;

async function metrics(): Promise<Map<string, Family>> {
  const res = await call(api.url, "/metrics");
  expect(res.status).toBe(200);
  return parsePrometheusText(await res.text());
}

/** The process id of `proc` as its series carry it (host-pid-random), from rg_process_info. */
function processOf(f: Map<string, Family>, proc: CliProcess): string | undefined {
  return samplesOf(f, "rg_process_info").find((s) => s.labels.process!.includes(`-${proc.pid}-`))?.labels
    .process;
}

beforeAll(async () => {
  h = new E2eHarness();
  const sim = await h.simBackend({ env: { SIM_STEP_MS: "5" } });
  const env = { METRICS_INTERVAL_MS: String(INTERVAL_MS) };
  worker = await h.startWorker("gpu-a", {
    name: "worker",
    env: { ...env, BACKENDS_FILE: h.backendsFile([{ id: "gpu-a", url: sim.url, capacity: 2 }]) },
  });
  api = await h.start("api", { env });
  bearer = await token("metrics-e2e", { tier: "pro" });
  await waitForModel(api.url, bearer, "flux/schnell");
}, 120_000);

afterAll(async () => {
  await h?.cleanup();
});

describe("metrics of a worker process", () => {
  it("reach the API's /metrics under the worker's process id, and are gone once it is killed", async () => {
    const ids = [];
    for (let i = 0; i < 3; i++) ids.push((await submitJob(api.url, bearer, foxRequest(`m${i}`, 4))).id);
    await waitTerminal(api.url, bearer, ids);

    // Each process publishes its snapshot on its own timer: the worker's, with the attempts, can be
    // read before the API's next one, with the admissions (so both are waited for).
    const before = await until("the worker's attempts and the API's admissions in /metrics", async () => {
      const f = await metrics();
      const id = processOf(f, worker);
      const apiId = processOf(f, api.proc);
      const runs = id
        ? sumOf(f, "rg_attempt_duration_seconds", { process: id }, "rg_attempt_duration_seconds_count")
        : 0;
      const admitted = apiId ? sumOf(f, "rg_admissions_total", { process: apiId }) : 0;
      return runs >= 3 && admitted >= 3 && id !== undefined && apiId !== undefined && { f, id, apiId };
    });
    const { f, id, apiId } = before;
    expect(samplesOf(f, "rg_process_info", { process: id })[0]!.labels.roles).toBe("worker");
    expect(samplesOf(f, "rg_process_info", { process: apiId })[0]!.labels.roles).toBe("api");
    // each process's families are its own: the API counts requests, the worker runs attempts
    expect(
      sumOf(f, "rg_job_wait_seconds", { process: id, model: "flux/schnell" }, "rg_job_wait_seconds_count"),
    ).toBe(3);
    expect(sumOf(f, "rg_worker_slots", { process: id })).toBe(2);
    expect(sumOf(f, "rg_breaker_state", { process: id, backend: "gpu-a" })).toBe(0);
    expect(sumOf(f, "rg_admissions_total", { process: apiId })).toBe(3);
    expect(samplesOf(f, "rg_http_requests_total", { process: id })).toEqual([]);
    expect(sumOf(f, "rg_backend_capacity", { backend: "gpu-a" })).toBe(2);
    // the bound: its snapshot expires 3 intervals after it was written, renewed every interval
    const pttl = await h.redis().pttl(createKeys(h.prefix).metricsSnapshot(id));
    expect(pttl).toBeGreaterThan(0);
    expect(pttl).toBeLessThanOrEqual(SNAPSHOT_LIFETIME_INTERVALS * INTERVAL_MS);

    await worker.kill();
    const after = await until(
      "the dead worker's series gone from /metrics",
      async () => {
        const g = await metrics();
        return processOf(g, worker) === undefined && g;
      },
      30_000,
    );
    for (const family of after.values()) {
      expect(
        family.samples.filter((s) => s.labels.process === id),
        family.name,
      ).toEqual([]);
    }
    // the API's own series stay
    expect(sumOf(after, "rg_admissions_total", { process: apiId })).toBe(3);
    expect(await h.redis().exists(createKeys(h.prefix).metricsSnapshot(id))).toBe(0);
  });
});
