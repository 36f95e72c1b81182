// The compliance job (docs/decisions.md "Compliance"): reads the billing ledger, the audit log
// (verified while read) and the analytics store over a window, reconciles them with the admissions
// journal (core/reconcile.ts), signs the report with the audit key and — for the scheduled runs —
// stores it in the CAS, pins it for its retention and lists it. The same report for the CLI, unsaved.
import type { AuditRecord } from "../core/audit-record.js";
import type { BlobStore, Ledger } from "../core/ports.js";
import { reconcile } from "../core/reconcile.js";
import { reportBytes, signReport, summaryOf } from "../core/reconcile-report.js";
import type { Admission, FinishedJob, JobSource, LiveJob, SignedReport } from "../core/reconcile-types.js";
import { HOUR_MS, type Clock } from "../core/time.js";
import type { CasRefs } from "../queues/cas-refs.js";
import type { ComplianceStore } from "../queues/compliance-store.js";

/** How far past a window's end the sources are read for the terminal records of its admissions. */
export const RECONCILE_HORIZON_MS = 2 * 86_400_000;

/** One job of the analytics store as its window query gives it (infra/clickhouse-analytics.ts). */
export interface AnalyticsJobRow {
  readonly job_id: string;
  readonly customer_id: string;
  readonly model: string;
  readonly status: string;
  readonly gpu_ms: number;
  readonly completed_ms: number;
}

export interface ReconcileSettings {
  /** RECONCILE_TOLERANCE. */
  readonly tolerance: number;
  /** RECONCILE_LOST_AFTER_MS. */
  readonly lostAfterMs: number;
  /** RECONCILE_MAX_IDS: jobs listed at most (findings; lost jobs). */
  readonly maxListed: number;
}

export interface ComplianceDeps {
  readonly ledger: Pick<Ledger, "read">;
  /** The audit log from its first leaf, each record verified as it is read; absent: no audit log. */
  readonly auditLog?: () => AsyncIterable<{ readonly record: AuditRecord }>;
  /**
   * The audit log's verified jobs of a window, read by a source that keeps what earlier runs
   * verified (audit-window.ts); used instead of `auditLog` when given.
   */
  readonly auditJobs?: JobSource["jobs"];
  /** The analytics store's jobs of a window, each once; absent: analytics are off. */
  readonly analytics?: (w: { fromMs: number; toMs: number }) => Promise<readonly AnalyticsJobRow[]>;
  /** The admissions journal's lines of [fromMs, toMs). */
  readonly admissions: (fromMs: number, toMs: number) => AsyncIterable<Admission>;
  /** Where admitted jobs stand in Redis (compliance-store.ts liveJobs). */
  readonly liveJobs: (ids: readonly string[]) => Promise<ReadonlyMap<string, LiveJob>>;
  /** The audit log's signing key (its kid is the JWKS's). */
  readonly signingKey: () => Promise<{ readonly kid: string; readonly seed: Uint8Array }>;
  readonly clock: Clock;
  readonly settings: ReconcileSettings;
}

/** The finished jobs of the billing ledger. */
export function ledgerSource(ledger: Pick<Ledger, "read">): JobSource {
  return {
    name: "ledger",
    async *jobs(fromMs, toMs) {
      for await (const e of ledger.read(fromMs, toMs)) {
        yield {
          job_id: e.job_id,
          customer_id: e.customer_id,
          model: e.model,
          completed_at: e.completed_at,
          gpu_ms: e.gpu_ms,
          status: e.status,
        };
      }
    },
  };
}

/**
 * The finished jobs of the audit log: the whole log is read (its verification needs every leaf from
 * the first), the window's records kept. A leaf that does not verify ends the read with its error.
 */
export function auditSource(log: () => AsyncIterable<{ readonly record: AuditRecord }>): JobSource {
  return {
    name: "audit",
    async *jobs(fromMs, toMs) {
      for await (const { record } of log()) {
        const at = Date.parse(record.completed_at);
        if (!(at >= fromMs && at < toMs)) continue;
        yield {
          job_id: record.job_id,
          customer_id: record.customer_id,
          model: `${record.family}/${record.model}`,
          completed_at: at,
          gpu_ms: record.gpu_ms,
          status: record.status,
        } satisfies FinishedJob;
      }
    },
  };
}

/** The finished jobs of the analytics store (one query per window). */
export function analyticsSource(
  query: (w: { fromMs: number; toMs: number }) => Promise<readonly AnalyticsJobRow[]>,
): JobSource {
  return {
    name: "analytics",
    async *jobs(fromMs, toMs) {
      for (const r of await query({ fromMs, toMs })) {
        yield {
          job_id: r.job_id,
          customer_id: r.customer_id,
          model: r.model,
          completed_at: r.completed_ms,
          gpu_ms: r.gpu_ms,
          status: r.status,
        };
      }
    },
  };
}

/**
 * The signed report of [fromMs, toMs).
 * @throws what the journal, Redis (liveJobs) or the signing key throw; a source's failure is in the
 *   report instead.
 */
export async function makeReport(deps: ComplianceDeps, fromMs: number, toMs: number): Promise<SignedReport> {
  if (!(Number.isFinite(fromMs) && Number.isFinite(toMs) && fromMs < toMs))
    throw new RangeError("the window must have from < to");
  const key = await deps.signingKey();
  const sources: JobSource[] = [ledgerSource(deps.ledger)];
  if (deps.auditJobs) sources.push({ name: "audit", jobs: deps.auditJobs });
  else if (deps.auditLog) sources.push(auditSource(deps.auditLog));
  if (deps.analytics) sources.push(analyticsSource(deps.analytics));
  const report = await reconcile({
    fromMs,
    toMs,
    now: deps.clock(),
    sources,
    admissions: deps.admissions(fromMs, toMs),
    liveStates: deps.liveJobs,
    tolerance: deps.settings.tolerance,
    lostAfterMs: deps.settings.lostAfterMs,
    maxListed: deps.settings.maxListed,
    horizonMs: RECONCILE_HORIZON_MS,
    keyId: key.kid,
  });
  return signReport(report, key.seed);
}

/** Where scheduled reports are kept. */
export interface ReportArchive {
  readonly blobs: Pick<BlobStore, "put">;
  readonly pins: Pick<CasRefs, "pin">;
  readonly store: Pick<ComplianceStore, "add">;
  /** COMPLIANCE_RETENTION_S in ms: how long a report stays listed and stored. */
  readonly retentionMs: number;
  readonly clock: Clock;
}

/**
 * Stores the report in the CAS, pins it for the retention (the collector's grace covers the moment
 * between the put and the pin) and lists it; returns its digest.
 */
export async function archiveReport(report: SignedReport, archive: ReportArchive): Promise<string> {
  const digest = await archive.blobs.put(reportBytes(report));
  const generated = Date.parse(report.generated_at);
  await archive.pins.pin([digest], generated + archive.retentionMs);
  await archive.store.add(summaryOf(report, digest), generated, archive.clock() - archive.retentionMs);
  return digest;
}

/**
 * The window a scheduled run reconciles: the last `hours` complete UTC hours and the current one up
 * to `settleMs` ago (what finished since then may still be on its way through the pipeline).
 */
export function scheduledWindow(
  now: number,
  hours: number,
  settleMs: number,
): { fromMs: number; toMs: number } {
  const toMs = now - settleMs;
  return { fromMs: Math.floor(toMs / HOUR_MS) * HOUR_MS - hours * HOUR_MS, toMs };
}
