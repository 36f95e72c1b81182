// Every metric of render-gateway in one place: names, help, labels, buckets (README "Metrics and
// logs" lists them). A process has one ProcessMetrics (src/main creates it; no module-level
// registry): each role takes its recorders from it (core/metrics.ts), and its series go out as a
// snapshot that every API process merges into GET /metrics, labelled with the process's id. The
// fleet gauges are not per process: the API reads them from Redis at scrape time (FleetMetrics).
import { Counter, Gauge, Histogram, Registry } from "prom-client";
import type {
  AttemptOutcome,
  ApiRecorder,
  FleetSnapshot,
  WebhookRecorder,
  WorkerRecorder,
} from "../core/metrics.js";
import { createHotCounter, createHotHistogram } from "./metrics-hot.js";
import { withLabels, type MetricJson, type ProcessSnapshot } from "./metrics-exposition.js";

/** Request duration buckets (s): a few ms for a submit, up to the sync route's minute. */
export const HTTP_SECONDS_BUCKETS = [
  0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60,
];
/** Queue wait buckets (s): from an idle fleet's instant start to a day (the longest ttl). */
export const WAIT_SECONDS_BUCKETS = [
  0.1, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600, 7200, 21600, 86400,
];
/** Attempt run-time buckets (s): an image in under a second to a long video. */
export const RUN_SECONDS_BUCKETS = [0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 20, 30, 60, 120, 300, 600, 1800];

/** HTTP methods kept as they are in the `method` label; any other is `other`. */
const METHODS = new Set(["GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS"]);

/** Breaker states as the `rg_breaker_state` gauge's values. */
const BREAKER_VALUE: Readonly<Record<string, number>> = { closed: 0, halfOpen: 1, open: 2 };

/** What the worker role shows at scrape time (read when the snapshot is taken). */
export interface WorkerView {
  /** This process's slots (WORKER_CONCURRENCY). */
  readonly slots: number;
  /** The attempts this process runs now, per backend id. */
  inFlight(): ReadonlyMap<string, number>;
  /** Its breakers' states per backend id. */
  breakers(): Readonly<Record<string, string>>;
}

export interface ProcessMetrics {
  readonly processId: string;
  /** The API role's recorders. */
  api(): ApiRecorder;
  /** The worker role's recorders; `view` is read at each snapshot. */
  worker(view: WorkerView): WorkerRecorder & { breakerChanged(backend: string, state: string): void };
  /** The pipeline role's webhook recorder. */
  webhooks(): WebhookRecorder;
  /** The process's series now, with its id and roles (what it publishes). */
  snapshot(now: number): Promise<ProcessSnapshot>;
}

/**
 * A process's metrics. `roles`: what it runs (the `roles` label of `rg_process_info`). Each role's
 * families are registered the first time the role asks for its recorders, so a process shows only
 * its roles' families.
 */
export function createProcessMetrics(o: {
  readonly processId: string;
  readonly roles: string;
}): ProcessMetrics {
  const registry = new Registry();
  const hot: { json(): MetricJson }[] = [];
  let api: ApiRecorder | undefined;
  let webhooks: WebhookRecorder | undefined;
  let worker: ReturnType<typeof workerMetrics> | undefined;
  return {
    processId: o.processId,
    api() {
      if (api === undefined) {
        const made = apiMetrics();
        hot.push(...made.hot);
        api = made.recorder;
      }
      return api;
    },
    worker(view) {
      worker ??= workerMetrics(registry);
      worker.views.push(view);
      return worker.recorder;
    },
    webhooks() {
      webhooks ??= webhookMetrics(registry);
      return webhooks;
    },
    async snapshot(now) {
      const metrics = [
        ...((await registry.getMetricsAsJSON()) as unknown as MetricJson[]),
        ...hot.map((h) => h.json()),
      ];
      return { process: o.processId, roles: o.roles, at: now, metrics };
    },
  };
}

/** The API's families: on the hot path, so hot series (metrics-hot.ts). */
function apiMetrics() {
  const requests = createHotCounter({
    name: "rg_http_requests_total",
    help: "HTTP requests answered, by method, route pattern and status",
  });
  const seconds = createHotHistogram({
    name: "rg_http_request_duration_seconds",
    help: "Time from a request's arrival to its response's headers (s), by method and route pattern",
    buckets: HTTP_SECONDS_BUCKETS,
  });
  const refusals = createHotCounter({
    name: "rg_refusals_total",
    help: "Requests answered with a problem document, by route pattern and error code (reason)",
  });
  const admissions = createHotCounter({
    name: "rg_admissions_total",
    help: "Jobs admitted, by mode (async: POST /queue, sync), family/model, priority and tier",
  });
  const recorder: ApiRecorder = {
    request(rawMethod, route, status, secs, code) {
      const method = METHODS.has(rawMethod) ? rawMethod : "other";
      const key = `${method} ${route}`;
      requests.series(`${key} ${status}`, () => ({ method, route, status: String(status) })).value += 1;
      seconds.series(key, () => ({ method, route })).observe(secs);
      if (code !== undefined) refusals.series(`${route} ${code}`, () => ({ route, reason: code })).value += 1;
    },
    admitted(mode, model, priority, tier) {
      admissions.series(`${mode} ${model} ${priority} ${tier}`, () => ({
        mode,
        model,
        priority,
        tier,
      })).value += 1;
    },
  };
  return { recorder, hot: [requests, seconds, refusals, admissions] };
}

function workerMetrics(registry: Registry) {
  const registers = [registry];
  const views: WorkerView[] = [];
  const wait = new Histogram({
    name: "rg_job_wait_seconds",
    help: "Time from a job's admission to its first start (s), by family/model",
    labelNames: ["model"],
    buckets: WAIT_SECONDS_BUCKETS,
    registers,
  });
  const run = new Histogram({
    name: "rg_attempt_duration_seconds",
    help: "Time an attempt ran: backend call and output storage (s), by family/model and outcome",
    labelNames: ["model", "outcome"],
    buckets: RUN_SECONDS_BUCKETS,
    registers,
  });
  const retries = new Counter({
    name: "rg_retries_total",
    help: "Jobs put back in the queue by an attempt's end, by kind (retry: an attempt spent, with backoff; busy: handed back, none spent) and cause (error code)",
    labelNames: ["kind", "cause"],
    registers,
  });
  const failures = new Counter({
    name: "rg_job_errors_total",
    help: "Jobs that ended in error at an attempt's end (not retriable, or out of attempts), by cause (error code)",
    labelNames: ["cause"],
    registers,
  });
  const reaps = new Counter({
    name: "rg_lease_reaps_total",
    help: "Jobs put back in the queue by this process's reaper because their lease expired (a worker stopped answering)",
    registers,
  });
  const transitions = new Counter({
    name: "rg_breaker_transitions_total",
    help: "Circuit breaker state changes of this process, by backend and new state",
    labelNames: ["backend", "state"],
    registers,
  });
  new Gauge({
    name: "rg_breaker_state",
    help: "This process's circuit breaker of each backend: 0 closed, 1 half-open, 2 open",
    labelNames: ["backend"],
    registers,
    collect() {
      this.reset();
      for (const v of views) {
        for (const [backend, state] of Object.entries(v.breakers()))
          this.set({ backend }, BREAKER_VALUE[state] ?? 2);
      }
    },
  });
  new Gauge({
    name: "rg_worker_slots",
    help: "Attempts this process runs at once at most (WORKER_CONCURRENCY)",
    registers,
    collect() {
      this.set(views.reduce((sum, v) => sum + v.slots, 0));
    },
  });
  new Gauge({
    name: "rg_worker_in_flight",
    help: "Attempts this process runs now, by backend",
    labelNames: ["backend"],
    registers,
    collect() {
      this.reset();
      for (const v of views) for (const [backend, n] of v.inFlight()) this.inc({ backend }, n);
    },
  });
  const recorder = {
    attemptStarted(model: string, waitedMs: number | undefined) {
      if (waitedMs !== undefined) wait.observe({ model }, waitedMs / 1000);
    },
    attemptEnded(model: string, outcome: AttemptOutcome, ms: number) {
      run.observe({ model, outcome }, Math.max(0, ms) / 1000);
    },
    settled(outcome: "retry" | "busy" | "failed", cause: string, requeued: boolean) {
      if (requeued && outcome !== "failed") retries.inc({ kind: outcome, cause });
      else if (!requeued) failures.inc({ cause });
    },
    reaped(jobs: number) {
      if (jobs > 0) reaps.inc(jobs);
    },
    breakerChanged(backend: string, state: string) {
      transitions.inc({ backend, state });
    },
  } satisfies WorkerRecorder & { breakerChanged(backend: string, state: string): void };
  return { recorder, views };
}

function webhookMetrics(registry: Registry): WebhookRecorder {
  const deliveries = new Counter({
    name: "rg_webhook_deliveries_total",
    help: "Webhook delivery attempts by outcome (delivered, skipped, retry, dead, error)",
    labelNames: ["outcome"],
    registers: [registry],
  });
  return { delivery: (outcome) => deliveries.inc({ outcome }) };
}

/**
 * The snapshots' series, each labelled with its process, and two series per process:
 * `rg_process_info{process, roles}` (1) and `rg_process_snapshot_age_seconds{process}`.
 */
export function processSeries(snapshots: readonly ProcessSnapshot[], now: number): MetricJson[][] {
  const info: MetricJson = {
    name: "rg_process_info",
    help: "A process that published its metrics (1), with its roles",
    type: "gauge",
    aggregator: "sum",
    values: snapshots.map((s) => ({ labels: { process: s.process, roles: s.roles }, value: 1 })),
  };
  const age: MetricJson = {
    name: "rg_process_snapshot_age_seconds",
    help: "Age of the process's published snapshot its series come from (s)",
    type: "gauge",
    aggregator: "sum",
    values: snapshots.map((s) => ({
      labels: { process: s.process },
      value: Math.max(0, (now - s.at) / 1000),
    })),
  };
  return [[info, age], ...snapshots.map((s) => withLabels(s.metrics, { process: s.process }))];
}

/** The fleet gauges, set from a FleetSnapshot at each scrape (one per API process). */
export interface FleetMetrics {
  /** The gauges of `snapshot`; undefined: the fleet could not be read (only `rg_metrics_fleet_read_ok` 0). */
  json(snapshot: FleetSnapshot | undefined): Promise<MetricJson[]>;
}

export function createFleetMetrics(): FleetMetrics {
  const registry = new Registry();
  const registers = [registry];
  const depth = new Gauge({
    name: "rg_queue_depth",
    help: "Queued jobs by priority and tier (the scheduler's counters)",
    labelNames: ["priority", "tier", "pool"],
    registers,
  });
  const tenants = new Gauge({
    name: "rg_tenants_active",
    help: "Tenants with a job queued or running",
    registers,
  });
  const inFlight = new Gauge({
    name: "rg_backend_in_flight",
    help: "Attempts holding a slot of the backend (leases), all workers",
    labelNames: ["backend", "pool"],
    registers,
  });
  const capacity = new Gauge({
    name: "rg_backend_capacity",
    help: "Slots of the backend (its configured capacity) as live workers report it",
    labelNames: ["backend", "pool"],
    registers,
  });
  const healthy = new Gauge({
    name: "rg_backend_healthy",
    help: "Whether live workers report the backend healthy (1) or not (0)",
    labelNames: ["backend", "pool"],
    registers,
  });
  const backlog = new Gauge({
    name: "rg_pipeline_backlog",
    help: "Entries (outbox), jobs (billing, webhooks, audit, analytics) or staged records (audit_log) waiting to be handled, by queue",
    labelNames: ["queue", "pool"],
    registers,
  });
  const delayed = new Gauge({
    name: "rg_pipeline_delayed",
    help: "Follow-up jobs waiting for a retry scheduled later, by queue",
    labelNames: ["queue", "pool"],
    registers,
  });
  const oldest = new Gauge({
    name: "rg_pipeline_oldest_seconds",
    help: "Age of the oldest entry or job waiting, by queue (s; 0 when none waits)",
    labelNames: ["queue", "pool"],
    registers,
  });
  // shown once there is a report: before the first, no sample (not "all agree")
  const reports = [new Registry()];
  const discrepancy = new Gauge({
    name: "rg_compliance_max_discrepancy",
    help: "The newest compliance report's largest discrepancy between ledger, audit log and analytics in a customer x model x hour (fraction)",
    registers: reports,
  });
  const lost = new Gauge({
    name: "rg_compliance_lost_jobs",
    help: "Admitted jobs the newest compliance report found no terminal record of anywhere (lost)",
    registers: reports,
  });
  const flagged = new Gauge({
    name: "rg_compliance_flagged",
    help: "Whether the newest compliance report is flagged (1) or clean (0)",
    registers: reports,
  });
  const reportAge = new Gauge({
    name: "rg_compliance_report_age_seconds",
    help: "Age of the newest compliance report (s)",
    registers: reports,
  });
  const readOk = new Gauge({
    name: "rg_metrics_fleet_read_ok",
    help: "Whether this answer holds the fleet (1), or only the answering process's series because Redis could not be read (0)",
    registers,
  });
  const all = [depth, tenants, inFlight, capacity, healthy, backlog, delayed, oldest];
  return {
    async json(s) {
      for (const g of all) g.reset();
      readOk.set(s === undefined ? 0 : 1);
      if (s === undefined) return [(await readOk.get()) as unknown as MetricJson];
      // a `pool` label only where there are pools (docs/decisions.md "Pools")
      const at = (x: { readonly pool?: string }) => (x.pool === undefined ? {} : { pool: x.pool });
      for (const d of s.depth) depth.set({ priority: d.priority, tier: d.tier, ...at(d) }, d.jobs);
      tenants.set(s.activeTenants);
      for (const b of s.backends) {
        inFlight.set({ backend: b.id, ...at(b) }, b.inFlight);
        capacity.set({ backend: b.id, ...at(b) }, b.capacity);
        healthy.set({ backend: b.id, ...at(b) }, b.healthy ? 1 : 0);
      }
      for (const p of s.pipeline) {
        backlog.set({ queue: p.queue, ...at(p) }, p.waiting);
        delayed.set({ queue: p.queue, ...at(p) }, p.delayed);
        oldest.set({ queue: p.queue, ...at(p) }, p.oldestSeconds);
      }
      const metrics = (await registry.getMetricsAsJSON()) as unknown as MetricJson[];
      if (s.compliance === undefined) return metrics;
      discrepancy.set(s.compliance.maxDiscrepancy);
      lost.set(s.compliance.lost);
      flagged.set(s.compliance.flagged ? 1 : 0);
      reportAge.set(s.compliance.ageSeconds);
      return [...metrics, ...((await reports[0]!.getMetricsAsJSON()) as unknown as MetricJson[])];
    },
  };
}
