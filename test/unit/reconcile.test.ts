// The reconciliation engine on in-memory sources: agreement, each kind of difference named by job id,
// the tolerance, failed and absent sources, and the admissions judged finished, pending, recent or lost.
import { describe, expect, it } from "vitest";
import { reconcile, type ReconcileOptions } from "../../src/core/reconcile.js";
import type {
  Admission,
  FinishedJob,
  JobSource,
  LiveJob,
  SourceName,
} from "../../src/core/reconcile-types.js";

const HOUR = 3_600_000;
const FROM = Date.UTC(2026, 11, 7, 10);
const TO = FROM + 2 * HOUR;
const NOW = TO + 10 * 60_000;

async function* iterate<T>(xs: readonly T[]): AsyncGenerator<T> {
  for (const x of xs) yield x;
}

function source(name: SourceName, jobs: readonly FinishedJob[]): JobSource {
  return {
    name,
    jobs: (from, to) => iterate(jobs.filter((j) => j.completed_at >= from && j.completed_at < to)),
  };
}

function jobs(count: number, o: { at?: number; customers?: number } = {}): FinishedJob[] {
  return Array.from({ length: count }, (_, i) => ({
    job_id: `job_${String(i).padStart(5, "0")}`,
    customer_id: `cust-${i % (o.customers ?? 3)}`,
    model: i % 2 === 0 ? "flux/schnell" : "sdxl/base",
    completed_at: (o.at ?? FROM) + ((i * 24_007) % (2 * HOUR)),
    gpu_ms: 100 + (i % 50),
    status: "complete",
  }));
}

function options(o: Partial<ReconcileOptions> & { all?: readonly FinishedJob[] } = {}): ReconcileOptions {
  const all = o.all ?? jobs(300);
  return {
    fromMs: FROM,
    toMs: TO,
    now: NOW,
    sources: [source("ledger", all), source("audit", all), source("analytics", all)],
    admissions: iterate([]),
    liveStates: async () => new Map(),
    tolerance: 0.001,
    lostAfterMs: 60_000,
    maxListed: 1_000,
    horizonMs: 2 * 86_400_000,
    keyId: "kid-test",
    ...o,
  };
}

describe("reconcile", () => {
  it("reports no difference when the three sources agree", async () => {
    const r = await reconcile(options());
    expect(r.flagged).toBe(false);
    expect(r.max_discrepancy).toBe(0);
    expect(r.discrepancies).toEqual([]);
    expect(r.mismatched_jobs).toBe(0);
    // 3 customers × 2 models × 2 hours
    expect(r.buckets).toBe(12);
    for (const s of Object.values(r.sources)) {
      expect(s).toMatchObject({ status: "ok", jobs: 300, duplicates: 0 });
    }
    expect(r.sources.ledger.gpu_ms).toBe(jobs(300).reduce((sum, j) => sum + j.gpu_ms, 0));
  });

  it("names a job missing from one source, with the bucket it belongs to", async () => {
    const all = jobs(300);
    const gone = all[17]!;
    const r = await reconcile(
      options({
        sources: [
          source("ledger", all),
          source("audit", all),
          source(
            "analytics",
            all.filter((j) => j !== gone),
          ),
        ],
      }),
    );
    expect(r.flagged).toBe(true);
    expect(r.mismatched_jobs).toBe(1);
    expect(r.discrepancies).toHaveLength(1);
    const b = r.discrepancies[0]!;
    expect(b).toMatchObject({ customer_id: gone.customer_id, model: gone.model, flagged: true });
    expect(b.jobs.analytics).toBe(b.jobs.ledger! - 1);
    expect(b.job_ids).toEqual([
      expect.objectContaining({ job_id: gone.job_id, reasons: ["missing"], missing_from: ["analytics"] }),
    ]);
    expect(Object.keys(b.job_ids[0]!.seen).sort()).toEqual(["audit", "ledger"]);
  });

  it("names a job whose GPU ms differ, and one placed in another hour or customer", async () => {
    const all = jobs(300);
    const altered = all.map((j, i) =>
      i === 5
        ? { ...j, gpu_ms: j.gpu_ms + 1 }
        : i === 6
          ? { ...j, completed_at: j.completed_at + HOUR < TO ? j.completed_at + HOUR : j.completed_at - HOUR }
          : i === 7
            ? { ...j, customer_id: "someone-else" }
            : j,
    );
    const r = await reconcile(
      options({ sources: [source("ledger", altered), source("audit", all), source("analytics", all)] }),
    );
    expect(r.flagged).toBe(true);
    expect(r.mismatched_jobs).toBe(3);
    const reasons = new Map(r.discrepancies.flatMap((b) => b.job_ids.map((f) => [f.job_id, f.reasons])));
    expect(reasons.get(all[5]!.job_id)).toEqual(["gpu_ms"]);
    expect(reasons.get(all[6]!.job_id)).toEqual(["hour"]);
    expect(reasons.get(all[7]!.job_id)).toEqual(["customer"]);
    const gpu = r.discrepancies.flatMap((b) => b.job_ids).find((f) => f.job_id === all[5]!.job_id)!;
    expect(gpu.seen.ledger!.gpu_ms).toBe(all[5]!.gpu_ms + 1);
    expect(gpu.seen.audit!.gpu_ms).toBe(all[5]!.gpu_ms);
  });

  it("flags only buckets above the tolerance, but names the jobs of every difference", async () => {
    // one bucket of 2,000 jobs: one missing job is a 0.05% difference
    const all = jobs(2_000, { customers: 1 }).map((j) => ({
      ...j,
      model: "flux/schnell",
      completed_at: FROM + 1_000,
    }));
    const r = await reconcile(
      options({
        all,
        sources: [source("ledger", all), source("audit", all), source("analytics", all.slice(1))],
      }),
    );
    expect(r.discrepancies).toHaveLength(1);
    expect(r.discrepancies[0]!.discrepancy).toBe(0.0005);
    expect(r.discrepancies[0]!.flagged).toBe(false);
    expect(r.discrepancies[0]!.job_ids.map((f) => f.job_id)).toEqual([all[0]!.job_id]);
    expect(r.flagged).toBe(false);
    const strict = await reconcile(
      options({
        all,
        tolerance: 0.0001,
        sources: [source("ledger", all), source("audit", all), source("analytics", all.slice(1))],
      }),
    );
    expect(strict.flagged).toBe(true);
  });

  it("reports a duplicate record of one job", async () => {
    const all = jobs(50);
    const r = await reconcile(
      options({ all, sources: [source("ledger", all), source("audit", [...all, all[3]!])] }),
    );
    expect(r.sources.audit.duplicates).toBe(1);
    expect(r.flagged).toBe(true);
    expect(r.discrepancies.flatMap((b) => b.job_ids)).toEqual([
      expect.objectContaining({ job_id: all[3]!.job_id, reasons: ["duplicate"] }),
    ]);
  });

  it("reports a source that fails as failed and flags the report, comparing the others", async () => {
    const all = jobs(40);
    const failing: JobSource = {
      name: "audit",
      // eslint-disable-next-line require-yield
      async *jobs() {
        throw new Error("leaf 12 does not match the checkpoint");
      },
    };
    const r = await reconcile(options({ all, sources: [source("ledger", all), failing] }));
    expect(r.sources.audit).toMatchObject({
      status: "failed",
      error: "leaf 12 does not match the checkpoint",
    });
    expect(r.sources.analytics.status).toBe("off");
    expect(r.discrepancies).toEqual([]);
    expect(r.flagged).toBe(true);
  });

  it("bounds the jobs it lists and counts those left out", async () => {
    const all = jobs(300);
    const r = await reconcile(
      options({ maxListed: 10, sources: [source("ledger", all), source("audit", all.slice(100))] }),
    );
    expect(r.mismatched_jobs).toBe(100);
    const listed = r.discrepancies.reduce((s, b) => s + b.job_ids.length, 0);
    const omitted = r.discrepancies.reduce((s, b) => s + b.job_ids_omitted, 0);
    expect(listed).toBe(10);
    expect(listed + omitted).toBe(100);
  });

  it("judges admissions: finished (also after the window), pending, recent, lost and billed", async () => {
    const all = jobs(10);
    const admission = (id: string, at: number): Admission => ({
      job_id: id,
      customer_id: "cust-0",
      model: "flux/schnell",
      admitted_at: at,
    });
    const later: FinishedJob = { ...all[0]!, job_id: "job_later", completed_at: TO + 5 * 60_000 };
    const admissions = [
      ...all.map((j) => admission(j.job_id, FROM)),
      admission(all[0]!.job_id, FROM), // a repeated line
      admission("job_later", TO - 1_000),
      admission("job_queued", FROM + 1_000),
      admission("job_gone", FROM + 2_000),
      admission("job_ended_unrecorded", FROM + 3_000),
      admission("job_billed_ghost", FROM + 4_000),
      admission("job_recent", TO - 1_000),
      admission("job_before", FROM - 1), // outside the window: not judged
    ];
    const asked: string[] = [];
    const states = new Map<string, LiveJob>([
      ["job_queued", { state: "queued", billed: false }],
      ["job_ended_unrecorded", { state: "complete", billed: false }],
      ["job_billed_ghost", { state: "absent", billed: true }],
    ]);
    const r = await reconcile(
      options({
        all: [...all, later],
        admissions: iterate(admissions),
        lostAfterMs: 20 * 60_000,
        liveStates: async (ids) => {
          asked.push(...ids);
          return new Map(ids.flatMap((id) => (states.has(id) ? [[id, states.get(id)!] as const] : [])));
        },
      }),
    );
    expect(r.admissions).toEqual({ journaled: 16, finished: 11, pending: 1, recent: 1 });
    expect(asked.sort()).toEqual(["job_billed_ghost", "job_ended_unrecorded", "job_gone", "job_queued"]);
    expect(r.lost.count).toBe(3);
    expect(r.lost.jobs.map((j) => [j.job_id, j.redis, j.billed])).toEqual([
      ["job_gone", "absent", false],
      ["job_ended_unrecorded", "complete", false],
      ["job_billed_ghost", "absent", true],
    ]);
    expect(r.lost.billed).toBe(1);
    expect(r.flagged).toBe(true);
    // the job that finished after the window is not in its buckets
    expect(r.sources.ledger.jobs).toBe(10);
  });

  it("reads no source past the report's time", async () => {
    const windows: [number, number][] = [];
    const spy: JobSource = {
      name: "ledger",
      jobs: (from, to) => {
        windows.push([from, to]);
        return iterate([]);
      },
    };
    await reconcile(options({ sources: [spy] }));
    expect(windows).toEqual([[FROM, NOW]]);
    windows.length = 0;
    await reconcile(options({ sources: [spy], now: TO + 10 * 86_400_000, horizonMs: HOUR }));
    expect(windows).toEqual([[FROM, TO + HOUR]]);
  });
});
