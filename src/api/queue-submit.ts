// An asynchronous submit (API.md §3 `POST /queue`) apart from HTTP: the body's validation, the tier's
// priorities, the webhook target, idempotency (replay, 409, 422, an earlier request's lost answer),
// the submits quota and the admission. `POST /queue` and the WebSocket's `generate` both go through
// here, so they refuse and admit alike.
import { AppError, validationError } from "../core/errors.js";
import { isPriorityAllowed, tierOf } from "../core/tiers.js";
import { parseQueueRequest } from "../core/request-schema.js";
import { outboundUrlProblem } from "../core/webhook-target.js";
import { rfc3339 } from "../core/time.js";
import { formatFamilyModel } from "../core/model-route.js";
import type { AdmissionLog } from "../core/ports.js";
import type { ApiDeps } from "./deps.js";
import type { Principal } from "./auth.js";
import { admitJob, isOutcomeUnknown, type AdmissionDeps } from "./admission.js";
import { newJobId } from "../core/pools.js";
import { bodyFingerprint, reservationProblem } from "./idempotency.js";
import { confirmReplicated } from "./replicated.js";
import type { RateHeaders, RateLimiter } from "./rate-limits.js";
import type { StoredResponse } from "../queues/idempotency-store.js";

export type QueueSubmitDeps = Pick<
  ApiDeps,
  | "catalog"
  | "config"
  | "tiers"
  | "ids"
  | "clock"
  | "idempotency"
  | "store"
  | "present"
  | "logger"
  | "replication"
>;

/** What a submit answers: the 202's body and headers (`location`, `link`). */
export interface QueueSubmitted {
  readonly status: number;
  /** `{id, status, position, eta_seconds?, events_url, created_at}`. */
  readonly body: Readonly<Record<string, unknown>>;
  readonly headers: Readonly<Record<string, string>>;
  /** The answer of an earlier request with the same idempotency key (nothing new was admitted). */
  readonly replayed: boolean;
  /** The RateLimit headers of the submits quota, when this submit took a unit of it. */
  readonly limits?: RateHeaders;
}

export interface QueueSubmitInput {
  readonly principal: Principal;
  /** The `POST /queue` body as parsed JSON (anything: it is validated here). */
  readonly body: unknown;
  /** An `Idempotency-Key` given beside the body (the body's own `idempotency_key` wins). */
  readonly headerKey?: string | undefined;
  /**
   * Called once the submit took a unit of the quota, before the admission: every refusal from then
   * on should carry these headers (the route puts them on its problem documents).
   */
  readonly onLimits?: (limits: RateHeaders) => void;
}

/**
 * Submits one job to the queue.
 * @throws AppError as `POST /queue` answers: 400 `validation_error` (body, webhook, images), 403
 *   `forbidden` (priority above the tier), 404 `not_found` (model), 409 `conflict` / 422
 *   `idempotency_mismatch` (idempotency key), 429 `rate_limited` / `queue_full`, 503 `unavailable`
 *   (also a job that REDIS_WAIT_REPLICAS replicas did not confirm in time: api/replicated.ts); and
 *   the Redis client's errors.
 */
export async function submitToQueue(
  deps: QueueSubmitDeps,
  admission: AdmissionDeps,
  limiter: RateLimiter,
  input: QueueSubmitInput,
): Promise<QueueSubmitted> {
  const { principal, body, headerKey } = input;
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
  // in the pool of the job's model (docs/decisions.md "Pools"); the idempotency key is kept there too
  const id = newJobId(admission.ids("job"), admission.pools, formatFamilyModel(req.family, req.model));
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
    if (held.kind === "replay") return confirmedReplay(deps, held.response);
    if (held.kind === "admitted") {
      // An earlier request with this key created the job, but its answer was lost: answer for it now.
      const response = await admittedResponse(deps, held.jobId, admission.journal);
      await storeAnswer(deps, principal.customerId, idemKey, fingerprint, response);
      return confirmedReplay(deps, response);
    }
  }
  let admitted;
  let limits: RateHeaders | undefined;
  try {
    // A submit counts here: valid, new (its idempotency key reserved, or none) and about to be
    // admitted; a replay or a 409 came back above without taking anything. What the admission
    // refuses from here on has been counted (docs/decisions.md "Rate limits").
    limits = await limiter.take("submits", principal);
    if (limits) input.onLimits?.(limits);
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
    // Replays take no quota, so the stored answer carries no RateLimit headers. Stored before the
    // replicas are waited for: a resend after a 503 "unreplicated" replays it (confirmed again).
    await storeAnswer(deps, principal.customerId, idemKey, fingerprint, {
      status: 202,
      body: created,
      headers,
    });
  }
  if (deps.replication) await confirmReplicated(deps.replication, admitted.id, idemKey !== undefined);
  return { status: 202, body: created, headers, replayed: false, ...(limits ? { limits } : {}) };
}

/**
 * A replay, once its job is on REDIS_WAIT_REPLICAS replicas: the first answer may have been a 503
 * "unreplicated", and this one is an acknowledgement too.
 */
async function confirmedReplay(deps: QueueSubmitDeps, response: StoredResponse): Promise<QueueSubmitted> {
  const id = (response.body as { id?: unknown } | null)?.id;
  if (response.status === 202 && typeof id === "string") await confirmReplicated(deps.replication, id, true);
  return replayOf(response);
}

/** A stored (or rebuilt) answer, replayed. */
function replayOf(response: StoredResponse): QueueSubmitted {
  const body = response.body;
  return {
    status: response.status,
    body: typeof body === "object" && body !== null ? (body as Record<string, unknown>) : {},
    headers: response.headers,
    replayed: true,
  };
}

/**
 * The 202 of a job admitted by an earlier request whose answer was lost, from the job as it is now;
 * the job is journaled now (its admission's answer, which would have journaled it, never came).
 */
async function admittedResponse(
  deps: QueueSubmitDeps,
  jobId: string,
  journal: AdmissionLog | undefined,
): Promise<StoredResponse> {
  const found = await deps.store.read(jobId);
  const location = deps.present.absolute(`/jobs/${jobId}`);
  const headers = { location, link: `<${location}/events>; rel="monitor"` };
  if (!found) throw new AppError("internal_error", `job ${jobId} vanished while its answer was rebuilt`);
  journal?.record({
    job_id: jobId,
    customer_id: found.job.customerId,
    model: formatFamilyModel(found.job.family, found.job.model),
    admitted_at: found.job.createdAt,
  });
  const job = await deps.present.job(found.job, found.position, undefined, found.held);
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
async function storeAnswer(
  deps: QueueSubmitDeps,
  customer: string,
  key: string,
  fingerprint: string,
  response: StoredResponse,
) {
  await deps.idempotency.complete(customer, key, fingerprint, response).catch((err: unknown) => {
    deps.logger.warn(
      { err, job: (response.body as { id?: unknown }).id },
      "idempotent answer not stored; a retry rebuilds it from the job",
    );
  });
}
