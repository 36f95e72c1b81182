// What the features report to their process's metrics: small recording functions, injected by
// src/main (src/infra/metrics.ts defines every metric and implements them). Every label value passed
// here comes from a bounded set — a route pattern, a catalogue model, a tier of the tiers table, an
// error code, a configured backend — never a customer id, a raw path or anything a client typed.
// Types only (README "Metrics and logs" lists the metrics).
import type { ErrorCode } from "./errors.js";
import type { Priority } from "./job.js";

/** What the API records: every answered request and every admitted job. */
export interface ApiRecorder {
  /**
   * One answered request: its method, the pattern of the route that took it (`/jobs/:id`; the
   * catch-all's pattern for a path no route has), its status, the time to its response (s) and, when
   * the answer was a problem document, the document's error code.
   */
  request(method: string, route: string, status: number, seconds: number, code: ErrorCode | undefined): void;
  /** One admitted job: its route (`async` POST /queue, `sync`), `family/model`, priority and tier. */
  admitted(mode: "sync" | "async", model: string, priority: Priority, tier: string): void;
}

/**
 * How an attempt ended, as the failure policy decided (workers/failure-policy.ts), or `aborted` when
 * its job was cancelled or it was known lost (its settle changes nothing).
 */
export type AttemptOutcome = "complete" | "retry" | "busy" | "failed" | "aborted";

/** What a worker process records of the attempts it runs and the leases it reaps. */
export interface WorkerRecorder {
  /** An attempt started; `waitedMs` is given on the job's first start only (its wait since admission). */
  attemptStarted(model: string, waitedMs: number | undefined): void;
  /** An attempt ended after `ms` (backend call and output storage). */
  attemptEnded(model: string, outcome: AttemptOutcome, ms: number): void;
  /**
   * An attempt that did not complete was settled: its job went back to the queue (`requeued`: a
   * `retry` spends an attempt and backs off, `busy` hands it back) or ended in error, because of
   * `cause` (a code of core/job-errors.ts, as the job's error carries it).
   */
  settled(outcome: "retry" | "busy" | "failed", cause: string, requeued: boolean): void;
  /** Jobs this process's reaper put back in the queue because their lease expired. */
  reaped(jobs: number): void;
}

/**
 * What became of one webhook delivery attempt (pipeline/webhooks): delivered, skipped (its URL is
 * disabled), retry, dead, or `error` when the attempt itself failed (Redis) and BullMQ runs it again.
 */
export type WebhookOutcome = "delivered" | "skipped" | "retry" | "dead" | "error";

export interface WebhookRecorder {
  delivery(outcome: WebhookOutcome): void;
}

/** The fleet as Redis holds it, read when `/metrics` is scraped (bounded reads, see src/main/metrics.ts). */
export interface FleetSnapshot {
  /** Queued jobs per tier and priority (the scheduler's counters). */
  readonly depth: readonly {
    readonly tier: string;
    readonly priority: string;
    readonly jobs: number;
    /** The pool (docs/decisions.md "Pools"); absent in a single-pool deployment. */
    readonly pool?: string;
  }[];
  /** Tenants with a job queued or running. */
  readonly activeTenants: number;
  /** Backends reported by live workers: slots, attempts holding a slot (leases), health. */
  readonly backends: readonly {
    readonly id: string;
    readonly capacity: number;
    readonly inFlight: number;
    readonly healthy: boolean;
    readonly pool?: string;
  }[];
  /**
   * The follow-up pipeline per queue (`outbox`, `billing`, `webhooks`, `audit`, and `audit_log`: records staged for the audit log's appender): entries or jobs waiting to be
   * handled, retries scheduled for later (BullMQ's delayed jobs; 0 for the outbox), and the age of the
   * oldest waiting (s, 0 when none waits).
   */
  readonly pipeline: readonly {
    readonly queue: string;
    readonly waiting: number;
    readonly delayed: number;
    readonly oldestSeconds: number;
    /** The outbox's pool, when there are pools (the follow-up queues are the deployment's). */
    readonly pool?: string;
  }[];
  /** The newest compliance report (docs/decisions.md "Compliance"); undefined before the first. */
  readonly compliance?: {
    /** Its largest discrepancy of a customer × model × hour (a fraction, 0 when all agree). */
    readonly maxDiscrepancy: number;
    /** Admitted jobs it reported lost. */
    readonly lost: number;
    readonly flagged: boolean;
    /** Seconds since it was made. */
    readonly ageSeconds: number;
  };
}
