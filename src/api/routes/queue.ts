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
    const headers = submitted.replayed
      ? { ...submitted.headers, "idempotent-replayed": "true" }
      : { ...submitted.headers, ...submitted.limits };
    return jsonResponse(c, submitted.body, submitted.status, headers);
  });

  app.get("/queue", async (c) => {
    const principal = c.get("principal");
    const [t, ahead, snapshot] = await Promise.all([
      deps.store.totals(),
      deps.store.aheadOfNew(principal.customerId, (p) => offsets[p]),
      deps.capacity.snapshot(),
    ]);
    // How long a new job of the caller would wait at each priority: the jobs its order key puts
    // ahead, on the fleet's capacity; the job is one work unit at the measured models' mean rate
    // (docs/decisions.md "Queue, positions and ETAs").
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
    return c.json({ depth: t.depth, running: t.running, eta_seconds: etas });
  });

  return app;
}
