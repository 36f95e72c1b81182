// The reconciliation (docs/decisions.md "Compliance"): the billing ledger, the audit log and the
// analytics store each hold one record per finished job; per customer × model × hour of completion
// their job counts and GPU ms must agree, and job by job so must their records. A bucket whose
// discrepancy is above the tolerance is flagged, with the jobs that explain it. Jobs the admissions
// journal says were admitted, past a bound, with no terminal record anywhere and no longer queued or
// running, are reported lost, by id. Pure: the sources, the journal and Redis's answer are injected.
import { HOUR_MS, rfc3339 } from "./time.js";
import {
  RECONCILE_SOURCES,
  type Admission,
  type BucketReport,
  type FindingReason,
  type JobFinding,
  type JobSource,
  type LiveJob,
  type LiveState,
  type LostJob,
  type ReconcileReport,
  type SeenAs,
  type SourceName,
  type SourceReport,
} from "./reconcile-types.js";

export interface ReconcileOptions {
  /** The window [fromMs, toMs) of completion times compared, ms since the epoch. */
  readonly fromMs: number;
  readonly toMs: number;
  /** The report's time. */
  readonly now: number;
  /** The sources configured (a source not among them is reported `off`). */
  readonly sources: readonly JobSource[];
  /** The journal's admissions in [fromMs, toMs), in any order (duplicates allowed). */
  readonly admissions: AsyncIterable<Admission>;
  /** Where these jobs stand in Redis now (asked only for admitted jobs found nowhere). */
  readonly liveStates: (ids: readonly string[]) => Promise<ReadonlyMap<string, LiveJob>>;
  /** A bucket is flagged when its discrepancy is above this (RECONCILE_TOLERANCE, 0.001). */
  readonly tolerance: number;
  /** Admissions younger than this are not judged (RECONCILE_LOST_AFTER_MS). */
  readonly lostAfterMs: number;
  /** Jobs the report lists at most, among the findings and among the lost (each). */
  readonly maxListed: number;
  /**
   * How far past `toMs` the sources are read for the admitted jobs' terminal records (a job admitted
   * in the window may end later); never past `now`.
   */
  readonly horizonMs: number;
  readonly keyId: string;
}

/** What one source recorded of a job: customer, model, hour of completion and GPU ms. */
interface Slot {
  readonly c: string;
  readonly m: string;
  readonly h: number;
  readonly g: number;
}

interface Bucket {
  readonly c: string;
  readonly m: string;
  readonly h: number;
  readonly jobs: number[];
  readonly gpu: number[];
  readonly findings: JobFinding[];
}

/** Live states that mean "not finished yet": the job is still in the scheduler's hands. */
const PENDING: ReadonlySet<LiveState> = new Set(["queued", "running"]);
/** Job ids asked of Redis per call. */
const LIVE_BATCH = 1_000;
/** Longest error message a report carries for a failed source. */
const ERROR_CHARS = 500;

const spread = (xs: readonly number[]): number => {
  const max = Math.max(...xs);
  return max <= 0 ? 0 : (max - Math.min(...xs)) / max;
};
/** Fractions to nine decimals: the same value prints the same on every platform. */
const fraction = (x: number): number => Math.round(x * 1e9) / 1e9;
const bucketKey = (s: Slot): string => `${s.c}\n${s.m}\n${s.h}`;

/**
 * Reads the journal, then every source (at once), compares, and judges the unfinished admissions.
 * Resolves to the report body; a source that throws is reported `failed` (never thrown).
 * @throws what `admissions` or `liveStates` throw.
 */
export async function reconcile(o: ReconcileOptions): Promise<ReconcileReport> {
  const horizon = Math.max(o.toMs, Math.min(o.now, o.toMs + o.horizonMs));
  const admitted = new Map<string, Admission>();
  for await (const a of o.admissions) {
    if (a.admitted_at >= o.fromMs && a.admitted_at < o.toMs && !admitted.has(a.job_id))
      admitted.set(a.job_id, a);
  }

  // customer and model strings repeat on every line: one copy each
  const interned = new Map<string, string>();
  const intern = (s: string): string => {
    const known = interned.get(s);
    if (known !== undefined) return known;
    interned.set(s, s);
    return s;
  };
  const n = RECONCILE_SOURCES.length;
  const rows = new Map<string, (Slot | undefined)[]>();
  const duplicated = new Set<string>();
  const finishedLater = new Set<string>();
  const reports = new Map<SourceName, SourceReport>();

  const readSource = async (src: JobSource): Promise<void> => {
    const i = RECONCILE_SOURCES.indexOf(src.name);
    let jobs = 0;
    let gpu = 0;
    let duplicates = 0;
    try {
      for await (const j of src.jobs(o.fromMs, horizon)) {
        if (j.completed_at >= o.toMs) {
          if (admitted.has(j.job_id)) finishedLater.add(j.job_id);
          continue;
        }
        if (j.completed_at < o.fromMs) continue;
        let row = rows.get(j.job_id);
        if (row === undefined) {
          row = new Array<Slot | undefined>(n).fill(undefined);
          rows.set(j.job_id, row);
        }
        if (row[i] !== undefined) {
          duplicates++;
          duplicated.add(j.job_id);
          continue;
        }
        const h = Math.floor(j.completed_at / HOUR_MS) * HOUR_MS;
        row[i] = { c: intern(j.customer_id), m: intern(j.model), h, g: j.gpu_ms };
        jobs++;
        gpu += j.gpu_ms;
      }
      reports.set(src.name, { status: "ok", jobs, gpu_ms: gpu, duplicates });
    } catch (err) {
      const message = err instanceof Error ? err.message : String(err);
      reports.set(src.name, {
        status: "failed",
        jobs: 0,
        gpu_ms: 0,
        duplicates: 0,
        error: message.slice(0, ERROR_CHARS),
      });
    }
  };
  await Promise.all(o.sources.map(readSource));

  const active = RECONCILE_SOURCES.flatMap((name, i) => (reports.get(name)?.status === "ok" ? [i] : []));
  const buckets = new Map<string, Bucket>();
  const bucketOf = (s: Slot): Bucket => {
    const key = bucketKey(s);
    let b = buckets.get(key);
    if (b === undefined) {
      b = {
        c: s.c,
        m: s.m,
        h: s.h,
        jobs: new Array<number>(n).fill(0),
        gpu: new Array<number>(n).fill(0),
        findings: [],
      };
      buckets.set(key, b);
    }
    return b;
  };
  let mismatched = 0;
  for (const [id, row] of rows) {
    const present = active.filter((i) => row[i] !== undefined);
    if (present.length === 0) continue; // seen only by a source that failed
    for (const i of present) {
      const b = bucketOf(row[i]!);
      b.jobs[i]! += 1;
      b.gpu[i]! += row[i]!.g;
    }
    const finding = findingOf(id, row, present, active, duplicated.has(id));
    if (finding === undefined) continue;
    mismatched++;
    const seenIn = new Set(present.map((i) => bucketKey(row[i]!)));
    for (const key of seenIn) buckets.get(key)!.findings.push(finding);
  }

  const discrepancies = bucketReports(buckets, active, o);
  const lost = await judgeAdmissions(admitted, rows, finishedLater, o);
  const sources = Object.fromEntries(
    RECONCILE_SOURCES.map((name) => [
      name,
      reports.get(name) ?? { status: "off", jobs: 0, gpu_ms: 0, duplicates: 0 },
    ]),
  ) as Record<SourceName, SourceReport>;
  const maxDiscrepancy = discrepancies.reduce((m, b) => Math.max(m, b.discrepancy), 0);
  const flagged =
    discrepancies.some((b) => b.flagged) ||
    lost.lost.count > 0 ||
    Object.values(sources).some((s) => s.status === "failed" || s.duplicates > 0);
  return {
    kind: "render-gateway.compliance-report",
    version: 1,
    from: rfc3339(o.fromMs),
    to: rfc3339(o.toMs),
    generated_at: rfc3339(o.now),
    tolerance: o.tolerance,
    lost_after_ms: o.lostAfterMs,
    sources,
    buckets: buckets.size,
    max_discrepancy: maxDiscrepancy,
    mismatched_jobs: mismatched,
    discrepancies,
    admissions: lost.admissions,
    lost: lost.lost,
    flagged,
    key_id: o.keyId,
  };
}

/** Why a job's records disagree (undefined when they agree in every source that was read). */
function findingOf(
  id: string,
  row: readonly (Slot | undefined)[],
  present: readonly number[],
  active: readonly number[],
  duplicate: boolean,
): JobFinding | undefined {
  const reasons: FindingReason[] = [];
  const missing = active.filter((i) => row[i] === undefined);
  if (missing.length > 0) reasons.push("missing");
  const first = row[present[0]!]!;
  const differs = (f: (s: Slot) => string | number) => present.some((i) => f(row[i]!) !== f(first));
  if (differs((s) => s.g)) reasons.push("gpu_ms");
  if (differs((s) => s.c)) reasons.push("customer");
  if (differs((s) => s.m)) reasons.push("model");
  if (differs((s) => s.h)) reasons.push("hour");
  if (duplicate) reasons.push("duplicate");
  if (reasons.length === 0) return undefined;
  const seen: Partial<Record<SourceName, SeenAs>> = {};
  for (const i of present) {
    const s = row[i]!;
    seen[RECONCILE_SOURCES[i]!] = { customer_id: s.c, model: s.m, hour: rfc3339(s.h), gpu_ms: s.g };
  }
  return { job_id: id, reasons, missing_from: missing.map((i) => RECONCILE_SOURCES[i]!), seen };
}

/** The buckets that disagree, largest discrepancy first, their findings listed up to the bound. */
function bucketReports(
  buckets: ReadonlyMap<string, Bucket>,
  active: readonly number[],
  o: Pick<ReconcileOptions, "tolerance" | "maxListed">,
): BucketReport[] {
  const pick = (xs: readonly number[]) =>
    Object.fromEntries(active.map((i) => [RECONCILE_SOURCES[i]!, xs[i]!])) as Partial<
      Record<SourceName, number>
    >;
  const out: { b: Bucket; discrepancy: number }[] = [];
  for (const b of buckets.values()) {
    const jobs = active.map((i) => b.jobs[i]!);
    const d = Math.max(
      spread(jobs),
      spread(active.map((i) => b.gpu[i]!)),
      b.findings.length / Math.max(1, ...jobs),
    );
    if (d > 0 || b.findings.length > 0) out.push({ b, discrepancy: fraction(Math.min(1, d)) });
  }
  out.sort(
    (x, y) =>
      y.discrepancy - x.discrepancy ||
      (x.b.c < y.b.c ? -1 : x.b.c > y.b.c ? 1 : 0) ||
      (x.b.m < y.b.m ? -1 : x.b.m > y.b.m ? 1 : 0) ||
      x.b.h - y.b.h,
  );
  let budget = o.maxListed;
  return out.map(({ b, discrepancy }) => {
    const findings = [...b.findings].sort((x, y) => (x.job_id < y.job_id ? -1 : 1));
    const listed = findings.slice(0, Math.max(0, budget));
    budget -= listed.length;
    return {
      customer_id: b.c,
      model: b.m,
      hour: rfc3339(b.h),
      jobs: pick(b.jobs),
      gpu_ms: pick(b.gpu),
      discrepancy,
      flagged: discrepancy > o.tolerance,
      job_ids: listed,
      job_ids_omitted: findings.length - listed.length,
    };
  });
}

/** The journal's admissions: finished (some source has them), pending, too recent, or lost. */
async function judgeAdmissions(
  admitted: ReadonlyMap<string, Admission>,
  rows: ReadonlyMap<string, unknown>,
  finishedLater: ReadonlySet<string>,
  o: Pick<ReconcileOptions, "now" | "lostAfterMs" | "liveStates" | "maxListed">,
): Promise<Pick<ReconcileReport, "admissions" | "lost">> {
  let finished = 0;
  let recent = 0;
  const unfinished: Admission[] = [];
  for (const a of admitted.values()) {
    if (rows.has(a.job_id) || finishedLater.has(a.job_id)) finished++;
    else if (a.admitted_at > o.now - o.lostAfterMs) recent++;
    else unfinished.push(a);
  }
  let pending = 0;
  const lost: LostJob[] = [];
  for (let i = 0; i < unfinished.length; i += LIVE_BATCH) {
    const batch = unfinished.slice(i, i + LIVE_BATCH);
    const states = await o.liveStates(batch.map((a) => a.job_id));
    for (const a of batch) {
      const live = states.get(a.job_id) ?? { state: "absent", billed: false };
      if (PENDING.has(live.state)) pending++;
      else
        lost.push({
          job_id: a.job_id,
          customer_id: a.customer_id,
          model: a.model,
          admitted_at: rfc3339(a.admitted_at),
          redis: live.state,
          billed: live.billed,
        });
    }
  }
  lost.sort((x, y) =>
    x.admitted_at < y.admitted_at ? -1 : x.admitted_at > y.admitted_at ? 1 : x.job_id < y.job_id ? -1 : 1,
  );
  const listed = lost.slice(0, o.maxListed);
  return {
    admissions: { journaled: admitted.size, finished, pending, recent },
    lost: {
      count: lost.length,
      jobs: listed,
      omitted: lost.length - listed.length,
      billed: lost.filter((j) => j.billed).length,
    },
  };
}
