// POST /queue (async submit, 202) and GET /queue (depth, running, ETAs per priority).
import { Hono } from "hono";
import { AppError, validationError } from "../../core/errors.js";
import { IDEMPOTENCY_KEY_MAX_CHARS } from "../../core/request-limits.js";
import { isPriorityAllowed, maxWeight, tierOf } from "../../core/tiers.js";
import { parseQueueRequest } from "../../core/request-schema.js";
import { queuedEtaSeconds } from "../../core/eta.js";
import { outboundUrlProblem } from "../../core/webhook-target.js";
import { rfc3339 } from "../../core/time.js";
import { jsonResponse } from "../respond.js";
import { boundedHeader } from "../request-input.js";
import type { ApiEnv } from "../context.js";
import type { ApiDeps } from "../deps.js";
import { admitJob, isOutcomeUnknown, type AdmissionDeps } from "../admission.js";
import { bodyFingerprint, reservationProblem } from "../idempotency.js";
import type { RateHeaders, RateLimiter } from "../rate-limits.js";
import type { StoredResponse } from "../../queues/idempotency-store.js";
import { PRIORITIES } from "../../core/job.js";
import { priorityOffset } from "../../queues/keys.js";

export function queueRoutes(deps: ApiDeps, admission: AdmissionDeps, limiter: RateLimiter) {
  const app = new Hono<ApiEnv>();
  /** The priority offsets of the order (keys.ts priorityOffset), fixed for the tier table. */
  const offsets = Object.fromEntries(
    PRIORITIES.map((p) => [p, priorityOffset(p, deps.config.agingBoundMs, maxWeight(deps.tiers))]),
  ) as Record<(typeof PRIORITIES)[number], number>;

  /** The 202 of a job admitted by an earlier request whose answer was lost, from the job as it is now. */
  async function admittedResponse(jobId: string): Promise<StoredResponse> {
    const found = await deps.store.read(jobId);
    const location = deps.present.absolute(`/jobs/${jobId}`);
    const headers = { location, link: `<${location}/events>; rel="monitor"` };
    if (!found) throw new AppError("internal_error", `job ${jobId} vanished while its answer was rebuilt`);
    const job = await deps.present.job(found.job, found.position);
    const body = {
      id: jobId,
      status: job.status,
      ...(job.position === undefined ? {} : { position: job.position }),
      ...(job.eta_seconds === undefined ? {} : { eta_seconds: job.eta_seconds }),
      events_url: `${location}/events`,
      created_at: job.created_at,
    };
    return { status: 202, body, headers };
  }

  /**
   * Stores the answer for replays. The job exists by then, so a failure here must not turn its 202
   * into an error: the reservation still names the job, and a retry past its hold is answered for
   * that job (idem_begin.lua's `admitted`), never with a second one.
   */
  async function storeAnswer(customer: string, key: string, fingerprint: string, response: StoredResponse) {
    await deps.idempotency.complete(customer, key, fingerprint, response).catch((err: unknown) => {
      deps.logger.warn(
        { err, job: (response.body as { id?: unknown }).id },
        "idempotent answer not stored; a retry rebuilds it from the job",
      );
    });
  }

  app.post("/queue", async (c) => {
    const principal = c.get("principal");
    const body = await deps.bodies.readJson(c);
    const headerKey = boundedHeader(c, "Idempotency-Key", IDEMPOTENCY_KEY_MAX_CHARS);
    // The header's key applies unless the body names one: a body member that is null is unset (as
    // generated clients send unset members), not a reason to drop the header's key.
    const req = parseQueueRequest(
      headerKey !== undefined &&
        typeof body === "object" &&
        body !== null &&
        !Array.isArray(body) &&
        (body as Record<string, unknown>)["idempotency_key"] == null
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
      const problem = outboundUrlProblem(req.webhook, deps.config.outbound);
      if (problem) {
        const constraint = problem.reason === "port" ? "port" : "public_https";
        throw validationError("webhook", constraint, `webhook: the URL ${problem.message}`);
      }
    }
    const idemKey = req.idempotency_key;
    const id = deps.ids("job");
    // The admission is sent before this or not at all; until then the key answers 409, after it the
    // key is settled (the job exists: replay it; or it is voided and a retry takes the key over).
    const admitBy = deps.clock() + deps.config.idempotencyHoldMs;
    let fingerprint = "";
    if (idemKey !== undefined) {
      // The key itself is not part of "the same body": it may come in the body or in the header.
      const { idempotency_key: _key, ...keyless } = body as Record<string, unknown>;
      fingerprint = bodyFingerprint(keyless);
      const held = await deps.idempotency.begin(principal.customerId, idemKey, fingerprint, id, admitBy);
      const problem = reservationProblem(held, deps.clock());
      if (problem) throw problem;
      if (held.kind === "replay") {
        return jsonResponse(c, held.response.body, held.response.status, {
          ...held.response.headers,
          "idempotent-replayed": "true",
        });
      }
      if (held.kind === "admitted") {
        // An earlier request with this key created the job, but its answer was lost: answer for it now.
        const response = await admittedResponse(held.jobId);
        await storeAnswer(principal.customerId, idemKey, fingerprint, response);
        return jsonResponse(c, response.body, response.status, {
          ...response.headers,
          "idempotent-replayed": "true",
        });
      }
    }
    let admitted;
    let limits: RateHeaders | undefined;
    try {
      // A submit counts here: valid, new (its idempotency key reserved, or none) and about to be
      // admitted; a replay or a 409 came back above without taking anything. What the admission
      // refuses from here on has been counted (docs/decisions.md "Rate limits").
      limits = await limiter.take("submits", principal);
      if (limits) c.set("problemHeaders", limits);
      admitted = await admitJob(
        {
          id,
          principal,
          request: req,
          priority: req.priority,
          mode: "async",
          ...(idemKey === undefined ? {} : { admitBy }),
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
      // Only an admission that surely created no job frees its key; after an unknown outcome the key
      // stays held and is settled later (a retry with it learns the real outcome).
      if (idemKey !== undefined && !isOutcomeUnknown(err))
        await deps.idempotency.release(principal.customerId, idemKey, id).catch(() => undefined);
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
      // Replays take no quota, so the stored answer carries no RateLimit headers.
      await storeAnswer(principal.customerId, idemKey, fingerprint, { status: 202, body: created, headers });
    }
    return jsonResponse(c, created, 202, limits ? { ...headers, ...limits } : headers);
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
