// What the reconciliation reads and what its report says (docs/decisions.md "Compliance"): the three
// independent records of finished jobs as one shape, the admissions journal's lines, and the report
// body that is signed. Types and the few constants that name their values; no I/O.

/** The independent records of finished jobs that must agree, in the order reports list them. */
export const RECONCILE_SOURCES = ["ledger", "audit", "analytics"] as const;
export type SourceName = (typeof RECONCILE_SOURCES)[number];

/** One finished job as a source records it: what the buckets and the job-by-job comparison need. */
export interface FinishedJob {
  readonly job_id: string;
  readonly customer_id: string;
  /** `family/model`. */
  readonly model: string;
  /** When the job ended (ms since the epoch): the time axis of every source. */
  readonly completed_at: number;
  /** GPU milliseconds billed (0 when nothing is). */
  readonly gpu_ms: number;
  /** complete, error or cancelled. */
  readonly status: string;
}

/** A source of finished jobs. */
export interface JobSource {
  readonly name: SourceName;
  /**
   * The finished jobs whose `completed_at` is in [fromMs, toMs), in any order. A job yielded twice
   * is reported as a duplicate. Throwing (a log that does not verify, a server that does not
   * answer) fails the source: the report names it and is flagged.
   */
  jobs(fromMs: number, toMs: number): AsyncIterable<FinishedJob>;
}

/** One line of the admissions journal: a job answered 202 (or admitted for a sync request). */
export interface Admission {
  readonly job_id: string;
  readonly customer_id: string;
  /** `family/model`. */
  readonly model: string;
  /** When the API admitted it (ms since the epoch, the API's clock). */
  readonly admitted_at: number;
}

/** Where a job stands in Redis now: its status, or `absent` when Redis has no record of it. */
export type LiveState = "queued" | "running" | "complete" | "error" | "cancelled" | "absent";

/** What Redis says of a job: where it stands, and whether its billing marker says it was billed. */
export interface LiveJob {
  readonly state: LiveState;
  readonly billed: boolean;
}

/** A source's part of the report. */
export interface SourceReport {
  /** ok; failed (read, verification or connection error: `error` says which); off (not configured). */
  readonly status: "ok" | "failed" | "off";
  /** Jobs and GPU ms completed in the window (each job once). */
  readonly jobs: number;
  readonly gpu_ms: number;
  /** Job ids it yielded more than once in the window. */
  readonly duplicates: number;
  readonly error?: string;
}

/** What one source recorded of a job (in a {@link JobFinding}). */
export interface SeenAs {
  readonly customer_id: string;
  readonly model: string;
  readonly hour: string;
  readonly gpu_ms: number;
}

/** Why a job does not agree across the sources. */
export type FindingReason = "missing" | "gpu_ms" | "customer" | "model" | "hour" | "duplicate";

/** A job that explains a bucket's difference: how each source that has it recorded it. */
export interface JobFinding {
  readonly job_id: string;
  readonly reasons: readonly FindingReason[];
  /** The sources (of those that were read) without it. */
  readonly missing_from: readonly SourceName[];
  readonly seen: Readonly<Partial<Record<SourceName, SeenAs>>>;
}

/** A customer × model × hour whose sources disagree. */
export interface BucketReport {
  readonly customer_id: string;
  readonly model: string;
  /** The hour's start (RFC 3339). */
  readonly hour: string;
  readonly jobs: Readonly<Partial<Record<SourceName, number>>>;
  readonly gpu_ms: Readonly<Partial<Record<SourceName, number>>>;
  /**
   * The largest of: the spread of the job counts ((max − min) ÷ max), of the GPU ms, and the share
   * of the bucket's jobs that do not agree job by job.
   */
  readonly discrepancy: number;
  /** discrepancy > the tolerance. */
  readonly flagged: boolean;
  readonly job_ids: readonly JobFinding[];
  /** Findings left out of `job_ids` (the report's bound on listed jobs). */
  readonly job_ids_omitted: number;
}

/** An admitted job with no terminal record anywhere, past the bound. */
export interface LostJob {
  readonly job_id: string;
  readonly customer_id: string;
  readonly model: string;
  readonly admitted_at: string;
  /** What Redis holds of it now (`absent`: nothing; a terminal status: it ended but was never recorded). */
  readonly redis: LiveState;
  /** Whether Redis's billing marker says it was billed (it must not be: it has no ledger entry). */
  readonly billed: boolean;
}

/** The report's body: the signed part (with `key_id`; the signature is added beside it). */
export interface ReconcileReport {
  readonly kind: "render-gateway.compliance-report";
  readonly version: 1;
  readonly from: string;
  readonly to: string;
  readonly generated_at: string;
  /** RECONCILE_TOLERANCE: a bucket is flagged above it. */
  readonly tolerance: number;
  /** RECONCILE_LOST_AFTER_MS: admissions younger than this are not judged. */
  readonly lost_after_ms: number;
  readonly sources: Readonly<Record<SourceName, SourceReport>>;
  /** Customer × model × hour buckets seen by any source. */
  readonly buckets: number;
  readonly max_discrepancy: number;
  /** Jobs that do not agree across the sources (all of them, listed or not). */
  readonly mismatched_jobs: number;
  readonly discrepancies: readonly BucketReport[];
  readonly admissions: {
    /** Journal lines of jobs admitted in the window (each job once). */
    readonly journaled: number;
    /** Of those, with a terminal record in some source (by the report's time). */
    readonly finished: number;
    /** Not finished, still queued or running in Redis. */
    readonly pending: number;
    /** Not finished, admitted less than `lost_after_ms` ago (not judged yet). */
    readonly recent: number;
  };
  readonly lost: {
    readonly count: number;
    readonly jobs: readonly LostJob[];
    readonly omitted: number;
    /**
     * Lost jobs that Redis's billing markers say were billed: must be 0 (a lost job has no ledger
     * entry, so its usage counts must not hold it either).
     */
    readonly billed: number;
  };
  /** A bucket flagged, a job lost, a duplicate, or a source that failed. */
  readonly flagged: boolean;
  /** The signing key's id (RFC 7638 thumbprint; the JWKS of the audit log holds it). */
  readonly key_id: string;
}

/** A report with its signature: base64url Ed25519 over the RFC 8785 bytes of the rest. */
export type SignedReport = ReconcileReport & { readonly signature: string };

/** A stored report as the list shows it (GET /admin/compliance/reports). */
export interface ReportSummary {
  /** The report's CAS digest (`sha256-…`): its id. */
  readonly digest: string;
  readonly from: string;
  readonly to: string;
  readonly generated_at: string;
  readonly flagged: boolean;
  readonly max_discrepancy: number;
  readonly mismatched_jobs: number;
  readonly lost: number;
}
