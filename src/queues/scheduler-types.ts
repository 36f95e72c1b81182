// The scheduler's interface and the shapes it takes and gives (scheduler.ts implements it): options,
// admissions and their outcomes, backends as dispatch sees them, attempts, settles, cancels.
import type { RedisClient } from "../infra/redis-client.js";
import type { JobError, JobRecord, Priority } from "../core/job.js";
import type { Clock } from "../core/time.js";
import type { Keys } from "./keys.js";

export interface SchedulerOptions {
  readonly redis: RedisClient;
  readonly prefix: string;
  readonly clock: Clock;
  /** How long a lease lives without renewal (LOCK_MS). */
  readonly leaseTtlMs: number;
  /** Spent attempts after which a job ends in error (JOB_ATTEMPTS). */
  readonly maxAttempts: number;
  readonly retentionS: number;
  readonly retentionCount: number;
  /**
   * Script calls per pipeline (REDIS_PIPELINE_MAX; 0: one command each), and admissions per admit
   * call (queues/admit-batch.ts; 0 or 1: a call each).
   */
  readonly pipelineMax?: number;
  /**
   * How long an admission whose reply was lost keeps trying to learn its outcome before it reports
   * it as unknown (ADMIT_RESOLVE_MS); default 3000.
   */
  readonly admitResolveMs?: number;
  /**
   * Lifetime of the marker that makes a late admit of a voided id store nothing (s); it outlives any
   * delay an admit call can have on the way to Redis. Default 86400.
   */
  readonly voidTtlS?: number;
  /**
   * The aging bound (AGING_BOUND_S, ms): the priority offsets of the order key (keys.ts
   * priorityOffsetMs). Default 600000.
   */
  readonly agingBoundMs?: number;
  /** The largest fair-share weight of the tier table (the priority offsets' divisor); default 1. */
  readonly maxWeight?: number;
  /** Queued jobs of everyone at once (QUEUE_MAX); default no limit. */
  readonly queueMax?: number;
}

/** A tenant's share and limits, from its tier (API.md §1). */
export interface TenantLimits {
  /** Fair-share weight (a positive integer). */
  readonly weight: number;
  /** Jobs running at once; undefined: no limit. */
  readonly maxRunning?: number;
  /** Jobs queued at once; undefined: no limit. */
  readonly maxQueued?: number;
}

export interface AdmitInput {
  readonly id: string;
  readonly route: string;
  readonly priority: Priority;
  /** Time-to-start deadline (ms). */
  readonly ttlAt?: number;
  /**
   * `ttlAt` is the default ttl of a job sent without one: stored, not indexed (expire.lua finds such
   * jobs by scanning each class's oldest), so it costs the admission and the start no extra write.
   */
  readonly ttlIsDefault?: boolean;
  /** Stored fields of the job record (strings). */
  readonly fields: Readonly<Record<string, string>>;
  /**
   * CAS digests of the job's input images: stored as the field `inputs` and referenced while the job
   * is queued or running, then pinned for its retention (lib.lua release_objects).
   */
  readonly inputs?: readonly string[];
  /** The request handed to the model (JSON), stored as the field `req`. */
  readonly request: string;
  /** Refuse (and store nothing) when the job would start behind more than this many jobs. */
  readonly maxPosition?: number;
  /**
   * The sync tier's check, judged in the admission on the leases held then (admit.lua a[17]–a[21]):
   * refuse (`too_far`, and store nothing) unless the job starts within the budget in `waves` waves
   * (⌊budget / the cost of a job ahead⌋) on the `slots` slots of `backends` (the healthy backends
   * serving its route), no more than the `workers`' slots (those serving them, which they share
   * with every backend they serve); and, within the first wave, while its tenant's running and
   * queued jobs are below its running-at-once limit.
   */
  readonly startWithin?: {
    readonly slots: number;
    readonly waves: number;
    readonly backends: readonly string[];
    /** Absent while no worker announces its slots (the backends' slots alone count). */
    readonly workers?: { readonly slots: number; readonly backends: readonly string[] };
  };
  /**
   * For the ETA of the admitted job (core/eta.ts): the estimated GPU ms of a job ahead (one wave),
   * the capacity that can run the route now and how much of it is busy (default 0).
   */
  readonly serviceMs: number;
  readonly capacity: number;
  readonly running?: number;
  /**
   * The job's estimated GPU cost (ms) as a whole (core/cost.ts): the fair share's cost, and the last
   * wave of its ETA; default `serviceMs`.
   */
  readonly costMs?: number;
  /** The tenant's weight and limits; default weight 1, no limits. */
  readonly tenant?: TenantLimits;
  /**
   * Slots of the whole fleet, healthy or not, no more than its live worker slots (the fair share's
   * unit C: a job advances its tenant's virtual time by cost / (C · weight)); default `capacity`;
   * 0: unknown (the last figure an admission stored is used).
   */
  readonly fleetSlots?: number;
  /** Admission time (ms), stored as `created`; defaults to the clock. */
  readonly now?: number;
}

/**
 * What an admission came to. `voided`: the admit was refused because its id had been voided before
 * it ran (a later request took the idempotency key over); `lost`: its reply was lost and settling it
 * found that it had not run (the id is voided now, so it never will); `unknown`: Redis did not answer
 * for long enough to tell whether the job exists — the id is then settled in the background as soon
 * as Redis answers again ({@link Scheduler.resolvePending}).
 */
export type AdmitResult =
  | { readonly admitted: true; readonly position: number; readonly etaSeconds?: number }
  | {
      readonly admitted: false;
      readonly reason: "exists" | "too_far" | "voided" | "lost" | "unknown";
      readonly position?: number;
    }
  | {
      /** Refused: the tenant's queued-at-once limit (`tenant`) or everyone's (`all`, QUEUE_MAX). */
      readonly admitted: false;
      readonly reason: "queue_full";
      readonly scope: "tenant" | "all";
      /** Jobs queued (of the tenant, or of everyone) when it was refused. */
      readonly queued: number;
    };

/** The outcome of an admission settled after the fact (see {@link Scheduler.resolveAdmission}). */
export type Resolution =
  | { readonly admitted: true; readonly position: number }
  | { readonly admitted: false; readonly reason: "voided" | "foreign" };

/** A backend as the dispatcher sees it. */
export interface BackendView {
  readonly id: string;
  readonly cap: number;
  readonly engine: string;
  readonly models: readonly string[];
  /** Healthy and not shut off by this process's breaker. */
  readonly ok: boolean;
}

/** A started attempt: the job is running under `token` and holds a lease on `backend`. */
export interface Attempt {
  readonly id: string;
  readonly token: string;
  readonly backend: string;
  readonly route: string;
  readonly attempt: number;
  /** Attempts spent so far (failures; busy hand-backs are free). */
  readonly spent: number;
  readonly modality: string;
  readonly family: string;
  readonly model: string;
  readonly task: string;
  readonly seed: number;
  /**
   * A job of the sync route: its caller waits for the bytes and cannot watch its events (it learns
   * the job id with the answer), so the attempt asks the backend for no previews.
   */
  readonly sync?: true;
  /** The stored request (JSON). */
  readonly request: string;
  /** On the job's first start only: ms from its admission to this start (the metrics' wait time). */
  readonly waited?: number;
}

/** What a worker offers when it settles an attempt: its free slots and its view of the backends. */
export interface NextOffer {
  readonly slots: number;
  readonly backends: readonly BackendView[];
  readonly prefer?: Readonly<Record<string, string>>;
}

export type Outcome = "complete" | "failed" | "retry" | "busy";

export interface FinishPayload {
  readonly output?: string;
  readonly outputs?: readonly string[];
  readonly ctype?: string;
  readonly seed?: number;
  readonly gpu_ms?: number;
  readonly error?: JobError;
  /** What really happened (backend answer, exception text): kept in the attempt log for admins. */
  readonly detail?: string;
  readonly notbefore?: number;
  readonly cool_ms?: number;
}

export type FinishResult = (
  | {
      readonly ok: true;
      readonly status: "complete" | "error" | "queued";
      /** The job as the settle left it, when asked for and the settle ended it. */
      readonly job?: JobRecord;
    }
  | { readonly ok: false; readonly reason: "missing" | "stale" | "cancelled" }
) & {
  /** Attempts started for the caller in the same step (see NextOffer). */
  readonly next: readonly Attempt[];
};

export type CancelResult = "was_queued" | "was_running" | "missing" | "terminal";

export interface Scheduler {
  readonly keys: Keys;
  /**
   * Admits a job. When the admit call fails in a way that leaves open whether Redis ran it (a
   * timeout, a dropped connection), the outcome is settled with {@link resolveAdmission} for up to
   * `admitResolveMs`, and reported as `unknown` when Redis stays silent that long.
   * @throws the Redis error when the call surely did nothing (an error reply, never sent).
   */
  admit(input: AdmitInput): Promise<AdmitResult>;
  /**
   * Settles an admission of `id` by `customer` whose outcome is not known: the job exists
   * (`admitted`, its position, -1 when no longer queued), or it does not and a late admit of this id
   * will store nothing (`voided`); `foreign`: the id belongs to another customer's job.
   */
  resolveAdmission(id: string, customer: string): Promise<Resolution>;
  /**
   * Settles the admissions this process reported as `unknown` — all of them (call it periodically),
   * or only `id` if it is one (before a read reports it missing); returns how many this call settled.
   */
  resolvePending(id?: string): Promise<number>;
  /**
   * Starts up to `freeSlots` attempts in the scheduler's order. `prefer`: the engine to choose
   * first per `family/model` (the catalogue's default backend). `backends` and `prefer` (here and
   * in a NextOffer) are encoded once per object: pass new ones when they change, never mutate them.
   */
  dispatch(
    freeSlots: number,
    backends: readonly BackendView[],
    prefer?: Readonly<Record<string, string>>,
  ): Promise<Attempt[]>;
  /**
   * Settles an attempt; with `next`, also starts the caller's next attempts in the same step. With
   * `syncOutput` (the bytes of a complete sync job's single output, not yet in the CAS), the settle
   * keeps them in Redis (sync-outputs.ts) when it completes the job; the caller then writes the CAS
   * object and drops the copy. With `withRecord`, a settle that ends the job answers with its record
   * (the sync route of this process then needs no read).
   */
  finish(
    id: string,
    token: string,
    backend: string,
    outcome: Outcome,
    payload: FinishPayload,
    next?: NextOffer,
    syncOutput?: Uint8Array,
    withRecord?: boolean,
  ): Promise<FinishResult>;
  /** `customer` undefined = admin (any job). */
  cancel(id: string, customer: string | undefined): Promise<CancelResult>;
  renew(held: readonly { id: string; token: string; backend: string }[]): Promise<string[]>;
  /** Reclaims the leases expired by `now` (default: the clock). */
  reap(now?: number): Promise<number>;
  expire(): Promise<number>;
  progress(
    id: string,
    token: string,
    progress: number,
    step: number,
    steps: number,
    preview?: string,
  ): Promise<boolean>;
}
