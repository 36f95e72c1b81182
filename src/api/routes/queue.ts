// POST /queue (async submit, 202: api/queue-submit.ts) and GET /queue (depth, running, ETAs per priority).
import { Hono } from "hono";
import { IDEMPOTENCY_KEY_MAX_CHARS } from "../../core/request-limits.js";
import { maxWeight } from "../../core/tiers.js";
import { queuedEtaSeconds } from "../../core/eta.js";
import { jsonResponse } from "../respond.js";
import { boundedHeader } from "../request-input.js";
import type { ApiEnv } from "../context.js";
import type { ApiDeps } from "../deps.js";
import type { AdmissionDeps } from "../admission.js";
import type { RateLimiter } from "../rate-limits.js";
import { submitToQueue } from "../queue-submit.js";
import { PRIORITIES } from "../../core/job.js";
import { priorityOffset } from "../../queues/keys.js";
import type { JobStore } from "../../queues/job-store.js";
import type { CapacityView } from "../capacity.js";

/** What a replayed answer adds to its stored headers. */
const REPLAYED: Readonly<Record<string, string>> = { "idempotent-replayed": "true" };

export function queueRoutes(deps: ApiDeps, admission: AdmissionDeps, limiter: RateLimiter) {
  const app = new Hono<ApiEnv>();
  /** The priority offsets of the order (keys.ts priorityOffset), fixed for the tier table. */
  const offsets = Object.fromEntries(
    PRIORITIES.map((p) => [p, priorityOffset(p, deps.config.agingBoundMs, maxWeight(deps.tiers))]),
  ) as Record<(typeof PRIORITIES)[number], number>;

  app.post("/queue", async (c) => {
    const body = await deps.bodies.readJson(c);
    const submitted = await submitToQueue(deps, admission, limiter, {
      principal: c.get("principal"),
      body,
      headerKey: boundedHeader(c, "Idempotency-Key", IDEMPOTENCY_KEY_MAX_CHARS),
      // Every refusal after the quota was taken carries its RateLimit headers. (A method, not an
      // arrow: tsx's keepNames would rename a new arrow on every request, ~1 µs.)
      onLimits(limits) {
        c.set("problemHeaders", limits);
      },
    });
    const more = submitted.replayed ? REPLAYED : submitted.limits;
    return jsonResponse(c, submitted.body, submitted.status, submitted.headers, more);
  });

  /**
   * Queued and running jobs and a new job's ETA per priority, over `store` and `capacity`: how long
   * a new job of the caller would wait at each priority: the jobs its order key puts ahead, on the
   * capacity; the job is one work unit at the measured models' mean rate (docs/decisions.md "Queue,
   * positions and ETAs").
   */
  async function figures(store: JobStore, capacity: CapacityView, customer: string) {
    const [t, ahead, snapshot] = await Promise.all([
      store.totals(),
      store.aheadOfNew(customer, (p) => offsets[p]),
      capacity.snapshot(),
    ]);
    const costMs = Math.round(snapshot.averageUnitMs);
    const basis = {
      capacity: snapshot.usableCapacity,
      running: Math.min(snapshot.usableCapacity, t.running),
      waveMs: snapshot.headCostMs ?? costMs,
    };
    const etas: Record<string, number> = {};
    for (const p of PRIORITIES) {
      const e = queuedEtaSeconds(ahead[p], basis, costMs);
      if (e !== undefined) etas[p] = e;
    }
    return { depth: t.depth, running: t.running, eta_seconds: etas };
  }

  app.get("/queue", async (c) => {
    const customer = c.get("principal").customerId;
    const views = deps.poolViews;
    if (views === undefined) return c.json(await figures(deps.store, deps.capacity, customer));
    // Pools (docs/decisions.md "Pools"): the totals as before, and each pool's own figures (its order,
    // its capacity) under `pools`.
    const [all, ...each] = await Promise.all([
      figures(deps.store, deps.capacity, customer),
      ...views.map((v) => figures(v.store, v.capacity, customer)),
    ]);
    return c.json({ ...all, pools: Object.fromEntries(views.map((v, i) => [v.name, each[i]])) });
  });

  return app;
}
