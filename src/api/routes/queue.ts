// POST /queue (async submit, 202) and GET /queue (depth, running, ETAs per priority).
import { Hono } from "hono";
import { AppError, validationError } from "../../core/errors.js";
import { IDEMPOTENCY_KEY_MAX_CHARS } from "../../core/request-limits.js";
import { isPriorityAllowed, tierOf } from "../../core/tiers.js";
import { parseQueueRequest } from "../../core/request-schema.js";
import { queuedEtaSeconds } from "../../core/eta.js";
import { webhookTargetProblem } from "../../core/webhook-target.js";
import { rfc3339 } from "../../core/time.js";
import { jsonResponse } from "../respond.js";
import { boundedHeader } from "../request-input.js";
import type { ApiEnv } from "../context.js";
import type { ApiDeps } from "../deps.js";
import { admitJob, type AdmissionDeps } from "../admission.js";
import { bodyFingerprint, createIdempotency } from "../idempotency.js";

export function queueRoutes(deps: ApiDeps, admission: AdmissionDeps) {
  const app = new Hono<ApiEnv>();
  const idempotency = createIdempotency(deps.redis, deps.scheduler.keys.prefix);

  app.post("/queue", async (c) => {
    const principal = c.get("principal");
    const body = await deps.bodies.readJson(c);
    const headerKey = boundedHeader(c, "Idempotency-Key", IDEMPOTENCY_KEY_MAX_CHARS);
    const req = parseQueueRequest(
      headerKey !== undefined &&
        typeof body === "object" &&
        body !== null &&
        !Array.isArray(body) &&
        !("idempotency_key" in body)
        ? { ...body, idempotency_key: headerKey }
        : body,
      { catalog: deps.catalog, minTtlS: deps.config.minTtlS, maxTtlS: deps.config.maxTtlS },
    );
    const tier = tierOf(deps.tiers, principal.tier);
    if (!tier || !isPriorityAllowed(tier, req.priority)) {
      throw new AppError(
        "forbidden",
        `priority ${req.priority} is not available on the ${principal.tier} tier`,
        {
          details: { field: "priority", tier: principal.tier },
        },
      );
    }
    if (req.webhook !== undefined) {
      const problem = webhookTargetProblem(req.webhook, deps.config.webhookAllowPrivate);
      if (problem) throw validationError("webhook", "public_https", `webhook: ${problem}`);
    }
    const idemKey = req.idempotency_key;
    let fingerprint = "";
    if (idemKey !== undefined) {
      // The key itself is not part of "the same body": it may come in the body or in the header.
      const { idempotency_key: _key, ...keyless } = body as Record<string, unknown>;
      fingerprint = bodyFingerprint(keyless);
      const replay = await idempotency.begin(principal.customerId, idemKey, fingerprint);
      if (replay) {
        return jsonResponse(c, replay.body, replay.status, {
          ...replay.headers,
          "idempotent-replayed": "true",
        });
      }
    }
    let admitted;
    try {
      admitted = await admitJob(
        {
          principal,
          request: req,
          priority: req.priority,
          mode: "async",
          ...(req.backend === undefined ? {} : { backend: req.backend }),
          ...(req.ttl === undefined ? {} : { ttlS: req.ttl }),
          extra: {
            ...(req.webhook
              ? { webhook: req.webhook, webhook_events: JSON.stringify(req.webhook_events ?? []) }
              : {}),
            ...(idemKey ? { idem: idemKey } : {}),
          },
        },
        admission,
      );
    } catch (err) {
      if (idemKey !== undefined)
        await idempotency.abandon(principal.customerId, idemKey).catch(() => undefined);
      throw err;
    }
    const location = deps.present.absolute(`/jobs/${admitted.id}`);
    const headers = { location, link: `<${location}/events>; rel="monitor"` };
    const created = {
      id: admitted.id,
      status: "queued",
      position: admitted.position,
      ...(admitted.etaSeconds === undefined ? {} : { eta_seconds: admitted.etaSeconds }),
      events_url: `${location}/events`,
      created_at: rfc3339(admitted.createdAt),
    };
    if (idemKey !== undefined) {
      await idempotency.complete(principal.customerId, idemKey, fingerprint, {
        status: 202,
        body: created,
        headers,
      });
    }
    return jsonResponse(c, created, 202, headers);
  });

  app.get("/queue", async (c) => {
    const [t, snapshot] = await Promise.all([deps.store.totals(), deps.capacity.snapshot()]);
    const capacity = snapshot.usableCapacity;
    const svc = snapshot.averageServiceMs;
    const ahead = {
      high: t.depth.high,
      normal: t.depth.high + t.depth.normal,
      low: t.depth.high + t.depth.normal + t.depth.low,
    };
    const eta = (n: number) => queuedEtaSeconds(n, capacity, svc);
    const etas: Record<string, number> = {};
    for (const p of ["high", "normal", "low"] as const) {
      const e = eta(ahead[p]);
      if (e !== undefined) etas[p] = e;
    }
    return c.json({ depth: t.depth, running: t.running, eta_seconds: etas });
  });

  return app;
}
