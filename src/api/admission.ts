// Admission shared by the async and sync routes: the Redis memory mark, input image checks (URLs
// fetched by the gateway, images decoded, readable objects), the capacity check of the sync tier,
// input images into the CAS, the seed, the stored record with its input digests and ttl, and one
// atomic admit (position, ETA, optional "must start within budget" check).
import type { Principal } from "./auth.js";
import type { AdmissionLog } from "../core/ports.js";
import { AppError, isAppError, validationError, toError } from "../core/errors.js";
import type { IdGenerator } from "../core/ids.js";
import type { Priority } from "../core/job.js";
import type { Clock } from "../core/time.js";
import { formatFamilyModel, formatRoute } from "../core/model-route.js";
import { QUEUE_ONLY_FIELDS, type GenerationRequest } from "../core/request-schema.js";
import { retryAfterSeconds, wavesWithin, type QueueBasis } from "../core/eta.js";
import type { CostModel } from "../core/cost.js";
import type { ApiRecorder } from "../core/metrics.js";
import type { AdmitInput, Scheduler, TenantLimits } from "../queues/scheduler.js";
import { tierOf, type Tiers } from "../core/tiers.js";
import type { CapacityView } from "./capacity.js";
import { newJobId, type PoolRouter } from "../core/pools.js";
import type { ImageHold } from "./input-images.js";
import {
  checkImages,
  hasInputImages,
  inputImagesOf,
  storeImage,
  type AdmissionImageDeps,
} from "./admission-images.js";

export interface AdmissionDeps extends AdmissionImageDeps {
  readonly scheduler: Scheduler;
  /** The tier table: a customer's fair-share weight and queued/running limits. */
  readonly tiers: Tiers;
  readonly capacity: CapacityView;
  /** A request's work units (core/cost.ts): stored with the job, its cost estimate's size. */
  readonly cost: Pick<CostModel, "workUnits">;
  readonly clock: Clock;
  readonly ids: IdGenerator;
  /** The pools (POOLS_FILE): a job's id names the pool of its model. Absent: one pool. */
  readonly pools?: PoolRouter;
  /** ttl (s) of a job admitted without one (DEFAULT_TTL_S): every queued job expires if it never starts. */
  readonly defaultTtlS: number;
  /**
   * True while Redis is near its memory limit (read on a timer, never per request): admissions are
   * refused with 503 `unavailable`, leaving the rest of the memory to the jobs already admitted.
   */
  readonly redisNearLimit: () => boolean;
  /** Counts admitted jobs (the process's metrics). */
  readonly metrics: Pick<ApiRecorder, "admitted">;
  /** The admissions journal: every admitted job, before its answer (docs/decisions.md "Compliance"). */
  readonly journal?: AdmissionLog;
  /** Told of each job admitted at position 0: the worker of this process dispatches it at once. */
  readonly onHead?: (jobId: string) => void;
}

export interface AdmitRequest {
  readonly principal: Principal;
  readonly request: GenerationRequest;
  readonly priority: Priority;
  readonly mode: "sync" | "async";
  readonly backend?: string;
  /** Time to start (s); default {@link AdmissionDeps.defaultTtlS}. */
  readonly ttlS?: number;
  /** Extra stored fields (webhook settings and the like). */
  readonly extra?: Readonly<Record<string, string>>;
  /** Sync tier: refuse with 503 capacity_exhausted unless the job can start within this budget. */
  readonly startWithinMs?: number;
  readonly outputFormat?: "png" | "webp";
  /** The job id to admit (an idempotency reservation names it beforehand); default a new one. */
  readonly id?: string;
  /**
   * The admit call is sent before this time (ms) or not at all (an idempotency reservation holds the
   * key until then): a request that gets here later gives up with 503 and creates nothing.
   */
  readonly admitBy?: number;
}

export interface Admitted {
  readonly id: string;
  readonly position: number;
  readonly etaSeconds?: number;
  readonly createdAt: number;
  readonly seed: number;
}

const SEED_SPACE = 4_294_967_296;
/** The holds of an admission without input images (none are ever added). */
const NO_HOLDS: ImageHold[] = Object.freeze([]) as unknown as ImageHold[];

/** Routing and queue options live in their own fields; the stored request is what the model gets. */
const NOT_GENERATION = new Set(QUEUE_ONLY_FIELDS);

/** How long a client refused for Redis memory waits before retrying: memory frees as jobs age out. */
const NEAR_LIMIT_RETRY_S = 5;

/** The CAS digests the stored request's `image`/`mask` refer to (the job's input references). */
function inputDigests(stored: Readonly<Record<string, unknown>>): { field: string; digest: string }[] {
  const out: { field: string; digest: string }[] = [];
  for (const field of ["image", "mask"]) {
    const ref = stored[field] as { kind?: unknown; digest?: unknown } | undefined;
    if (ref?.kind === "digest" && typeof ref.digest === "string") out.push({ field, digest: ref.digest });
  }
  return out;
}

/**
 * Admits one job.
 * @throws AppError 503 `unavailable` (with `Retry-After`) while Redis is near its memory limit or the
 *   process's input-image budget is spent (INPUT_IMAGE_BUDGET_BYTES);
 *   400 `validation_error` for an input image that is not usable (also when it vanished from the CAS
 *   just now); 404 `not_found` for a model no backend serves; 503 `capacity_exhausted` (sync tier).
 */
export function admitJob(a: AdmitRequest, deps: AdmissionDeps): Promise<Admitted> {
  // Not async (one promise less per admission), and never throws: what goes wrong rejects.
  try {
    if (deps.redisNearLimit()) {
      throw new AppError("unavailable", "the job store is near its memory limit; retry later", {
        headers: { "retry-after": String(NEAR_LIMIT_RETRY_S) },
      });
    }
    // Without input images nothing is held (and no promise of its own to wait through).
    if (!hasInputImages(inputImagesOf(a.request))) return admitChecked(a, deps, NO_HOLDS);
    return admitHolding(a, deps);
  } catch (err) {
    return Promise.reject(toError(err));
  }
}

/** {@link admitChecked} holding its input images' bytes against the process's image budget until it is over. */
async function admitHolding(a: AdmitRequest, deps: AdmissionDeps): Promise<Admitted> {
  const holds: ImageHold[] = [];
  try {
    return await admitChecked(a, deps, holds);
  } finally {
    for (const hold of holds) hold.release();
  }
}

async function admitChecked(a: AdmitRequest, deps: AdmissionDeps, holds: ImageHold[]): Promise<Admitted> {
  const r = a.request;
  const refs = inputImagesOf(r);
  const checked = hasInputImages(refs) ? await checkImages(refs, a.principal, deps, holds) : {};
  const familyModel = formatFamilyModel(r.family, r.model);
  const route = formatRoute(familyModel, a.backend);
  // Never accept a job that nothing will ever run: when live workers report their backends and
  // none serves the model, it is unknown to this deployment. (With no worker reporting yet, jobs
  // are accepted and wait for one.)
  // (the sync tier's check needs a recent one: its waves are as long as the jobs queued now)
  const snapshot =
    a.startWithinMs !== undefined
      ? await deps.capacity.fresh()
      : (deps.capacity.current() ?? (await deps.capacity.snapshot()));
  const routeInfo = snapshot.route(familyModel);
  if ((routeInfo.reported ?? snapshot.backends.length > 0) && !routeInfo.served) {
    throw new AppError("not_found", `no backend of this deployment serves ${familyModel}`);
  }
  if (a.backend !== undefined && !snapshot.route(familyModel, a.backend).served) {
    throw validationError("backend", "serves_model", `no backend "${a.backend}" serves ${familyModel}`);
  }
  // The job's estimated GPU cost, and the capacity that can run it now (docs/decisions.md "Queue,
  // positions and ETAs"): its ETA and the sync tier's check.
  const work = deps.cost.workUnits(r);
  const costMs = snapshot.costMs(familyModel, work);
  const basis = snapshot.basis(familyModel, a.backend, costMs);
  // The sync tier's capacity check: a route that no slot can run is refused before anything is
  // stored (a refused request leaves no object and no ownership behind); whether a slot frees up in
  // time is judged by the admit itself, on the leases held at that moment (the snapshot's busy
  // slots may be a second old, and concurrent sync requests are not in them).
  let startWithin: AdmitInput["startWithin"];
  if (a.startWithinMs !== undefined) {
    if (basis.capacity <= 0) {
      throw capacityExhausted(basis, 0, a.startWithinMs, "no backend can run this model right now");
    }
    startWithin = {
      ...snapshot.route(familyModel, a.backend).sync,
      waves: wavesWithin(a.startWithinMs, basis.waveMs),
    };
  }
  const seed = r.seed ?? Math.floor(Math.random() * SEED_SPACE);
  const stored: Record<string, unknown> = {};
  for (const k in r) {
    const v = (r as unknown as Record<string, unknown>)[k];
    if (v !== undefined && !NOT_GENERATION.has(k)) stored[k] = v;
  }
  stored.seed = seed;
  if (checked.image) stored.image = await storeImage(checked.image, a.principal, deps);
  if (checked.mask) stored.mask = await storeImage(checked.mask, a.principal, deps);
  if (a.outputFormat) stored.output_format = a.outputFormat;
  // The job references its stored inputs from admission on (admit.lua counts them), so the CAS
  // collector keeps them while it exists. Touching each first keeps one that was given by digest
  // from being collected between its check above and the admit (put refreshed the inline ones).
  const inputs = inputDigests(stored);
  for (const { field, digest } of inputs) {
    if (!(await deps.blobs.touch(digest))) {
      throw validationError(field, "exists", `${field}: no stored object ${digest}`);
    }
  }
  const ttlS = a.ttlS ?? deps.defaultTtlS;
  const now = deps.clock();
  const id = a.id ?? newJobId(deps.ids("job"), deps.pools, familyModel);
  const fields: Record<string, string> = {
    cust: a.principal.customerId,
    tier: a.principal.tier,
    prio: a.priority,
    mod: r.modality,
    fam: r.family,
    mdl: r.model,
    task: r.task,
    fmt: r.format,
    seed: String(seed),
    mode: a.mode,
    work: String(work),
  };
  if (a.backend) fields.backend_req = a.backend;
  if (a.extra) Object.assign(fields, a.extra);
  if (a.admitBy !== undefined && deps.clock() >= a.admitBy) {
    throw new AppError("unavailable", "the admission took too long and was given up; retry", {
      headers: { "retry-after": "1" },
    });
  }
  const res = await deps.scheduler.admit({
    id,
    route,
    priority: a.priority,
    ttlAt: now + ttlS * 1000,
    ...(a.ttlS === undefined ? { ttlIsDefault: true } : {}),
    ...(inputs.length === 0 ? {} : { inputs: inputs.map((i) => i.digest) }),
    ...(startWithin === undefined ? {} : { startWithin }),
    costMs,
    serviceMs: basis.waveMs,
    capacity: basis.capacity,
    running: basis.running,
    fleetSlots: snapshot.fleetSlots(familyModel),
    tenant: tenantLimits(deps.tiers, a.principal.tier),
    now,
    request: JSON.stringify(stored),
    fields,
  });
  if (!res.admitted) {
    // `too_far` (no slot frees up within the budget on the leases held at the admit) can come after
    // an inline image was stored and granted to the caller. That is harmless: the object is content
    // the caller sent and may read anyway, keyed by its digest, and its grant lapses with the
    // retention window. The check above refuses a route no slot can run before storing.
    if (res.reason === "too_far") {
      const why =
        "no slot that can run this model frees up within the wait (or your running-at-once limit is reached)";
      throw capacityExhausted(basis, res.position ?? 0, a.startWithinMs ?? 0, why);
    }
    if (res.reason === "queue_full")
      throw queueFull(res.scope, res.queued, a.principal.tier, basis.waveMs, basis.capacity);
    if (res.reason === "unknown") throw outcomeUnknown(id, a.admitBy !== undefined);
    if (res.reason === "lost") {
      throw new AppError(
        "unavailable",
        "the job store did not answer in time; the job was not admitted: retry",
        { headers: { "retry-after": "1" } },
      );
    }
    if (res.reason === "voided") {
      throw new AppError(
        "conflict",
        "this request was superseded by a retry with the same idempotency key; that retry's answer stands",
        { details: { field: "idempotency_key" } },
      );
    }
    throw new AppError("internal_error", "job id collision");
  }
  if (res.position === 0) deps.onHead?.(id);
  deps.metrics.admitted(a.mode, familyModel, a.priority, a.principal.tier);
  deps.journal?.record({
    job_id: id,
    customer_id: a.principal.customerId,
    model: familyModel,
    admitted_at: now,
  });
  return {
    id,
    position: res.position,
    createdAt: now,
    seed,
    ...(res.etaSeconds === undefined ? {} : { etaSeconds: res.etaSeconds }),
  };
}

/**
 * The answer when Redis stayed silent after the admit call was sent: the job may or may not exist.
 * It names the job, so the client can look (`GET /jobs/{id}`), and, when the request held an
 * idempotency key (`keyed`), resend with it (settled as soon as Redis answers: the real outcome,
 * never a second job). Without a key a resend would be a new job, so it is not suggested.
 */
export function outcomeUnknown(id: string, keyed: boolean): AppError {
  const how = keyed
    ? `Resend with the same Idempotency-Key to learn the outcome (never a second job), or GET /jobs/${id} once the service answers`
    : `GET /jobs/${id} once the service answers to learn the outcome (resending this request would submit a second job)`;
  return new AppError(
    "unavailable",
    `the job store did not answer in time: job ${id} may or may not have been admitted. ${how}`,
    { details: { job_id: id, outcome: "unknown" }, headers: { "retry-after": "1", "x-job-id": id } },
  );
}

/** Whether an error is {@link outcomeUnknown}'s: the job may exist, so its idempotency key must stay held. */
export function isOutcomeUnknown(err: unknown): boolean {
  return isAppError(err) && err.details?.["outcome"] === "unknown";
}

/** A customer's share and limits from its tier (API.md §1); an unknown tier gets weight 1, no limits. */
function tenantLimits(tiers: Tiers, tierName: string): TenantLimits {
  const tier = tierOf(tiers, tierName);
  if (tier === undefined) return { weight: 1 };
  return {
    weight: tier.weight,
    ...(tier.max_running === null ? {} : { maxRunning: tier.max_running }),
    ...(tier.max_queued === null ? {} : { maxQueued: tier.max_queued }),
  };
}

/**
 * 429 `queue_full`: the customer's queued-at-once limit (`tenant`) or everyone's (`all`). Retry-After
 * is the time until a queued job of the route starts, so a place frees up: the estimated cost of a
 * job ahead (`serviceMs`, one wave) shared by the route's slots, at least 1 s.
 */
function queueFull(
  scope: "tenant" | "all",
  queued: number,
  tier: string,
  serviceMs: number,
  capacity: number,
): AppError {
  const retry = Math.max(1, Math.ceil(serviceMs / Math.max(1, capacity) / 1000));
  const why =
    scope === "tenant"
      ? `${queued} of your jobs are queued, the limit of the ${tier} tier`
      : `the queue holds ${queued} jobs, its limit`;
  return new AppError("queue_full", `${why}; retry in ${retry}s`, {
    headers: { "retry-after": String(retry) },
    details: { scope, queued },
  });
}

/** 503 `capacity_exhausted`, `Retry-After` when a job at `position` would start within `budgetMs`. */
function capacityExhausted(basis: QueueBasis, position: number, budgetMs: number, why: string): AppError {
  const retry = retryAfterSeconds(position, basis, budgetMs);
  return new AppError(
    "capacity_exhausted",
    `${why}; retry in ${retry}s or use the async queue (POST /queue)`,
    {
      headers: { "retry-after": String(retry), link: '</queue>; rel="alternate"' },
    },
  );
}
