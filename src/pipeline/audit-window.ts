// The audit log as the scheduled reconciliation reads it (docs/decisions.md "Compliance"): each run
// verifies only the leaves appended since the last one (readAuditLog resumed from the compact range
// kept), and keeps the verified records the next windows can still cover, so a run costs the new
// records and the window's, not the log's age. One run in COMPLIANCE_FULL_VERIFY_EVERY reads the
// whole log again (a leaf changed below what was verified is only seen so), as does any run whose
// resumed read is refused or finds a fault. The state is kept in memory and under DATA_DIR.
import { AuditTailUncovered } from "../core/audit-log-check.js";
import type { AuditRecord } from "../core/audit-record.js";
import { parseAuditResume, type AuditResume } from "../core/audit-resume.js";
import type { FinishedJob } from "../core/reconcile-types.js";

/** A verified record kept: [leaf, job, customer, family/model, completed_at ms, gpu ms, status]. */
export type KeptRecord = readonly [number, string, string, string, number, number, string];

/** What a run leaves for the next. */
export interface AuditWindowState {
  readonly resume: AuditResume;
  /** The records below `resume.size` completed at or after this, all of them, are in `rows`. */
  readonly keptFrom: number;
  readonly rows: readonly KeptRecord[];
  /** Runs that resumed since the last full read. */
  readonly resumed: number;
}

/** How a run read the log. */
export interface AuditWindowRead {
  readonly mode: "full" | "resumed";
  /** The leaf the read verified from (0 for a full read) and the size verified after it. */
  readonly from: number;
  readonly size: number;
  /** Records kept for the windows to come. */
  readonly kept: number;
  /** Why a run read in full (the first run, the periodic full read, a refused or failed resume). */
  readonly why?: string;
}

export interface AuditWindowOptions {
  /** readAuditLog: in full without `resume`, else on from it; `onResume` told where to resume next. */
  read(o: {
    readonly resume?: AuditResume;
    readonly knownJobs?: Iterable<readonly [string, number]>;
    readonly onResume: (r: AuditResume) => void;
  }): AsyncIterable<{ readonly index: number; readonly record: AuditRecord }>;
  /** Where the state outlives the process and is shared by the pipeline processes. */
  readonly store: { load(): Promise<unknown>; save(stored: unknown): Promise<void> };
  /** COMPLIANCE_FULL_VERIFY_EVERY: one run in this many reads the whole log (1: every run). */
  readonly fullEvery: number;
  readonly onRead?: (read: AuditWindowRead) => void;
  /** Told when the state could not be stored (the run still uses it; the next one may read more). */
  readonly onSaveError?: (err: unknown) => void;
}

/** The audit log's finished jobs of [fromMs, toMs), each verified; for one run at a time. */
export interface AuditWindow {
  jobs(fromMs: number, toMs: number): AsyncIterable<FinishedJob>;
}

const STATE_VERSION = 1;
const MAX_ROWS = 50_000_000;

function isKeptRecord(v: unknown): v is KeptRecord {
  return (
    Array.isArray(v) &&
    v.length === 7 &&
    Number.isSafeInteger(v[0]) &&
    typeof v[1] === "string" &&
    typeof v[2] === "string" &&
    typeof v[3] === "string" &&
    Number.isFinite(v[4]) &&
    Number.isFinite(v[5]) &&
    typeof v[6] === "string"
  );
}

/** A stored state checked for shape; undefined for anything else (the next run reads in full). */
export function parseAuditWindowState(v: unknown): AuditWindowState | undefined {
  if (typeof v !== "object" || v === null || Array.isArray(v)) return undefined;
  const { version, resume, keptFrom, rows, resumed } = v as Record<string, unknown>;
  if (version !== STATE_VERSION) return undefined;
  const r = parseAuditResume(resume);
  if (typeof r === "string" || !Number.isFinite(keptFrom)) return undefined;
  if (!Number.isSafeInteger(resumed) || (resumed as number) < 0) return undefined;
  if (!Array.isArray(rows) || rows.length > MAX_ROWS || !rows.every(isKeptRecord)) return undefined;
  if (!rows.every((row) => row[0] < r.size)) return undefined;
  return { resume: r, keptFrom: keptFrom as number, rows, resumed: resumed as number };
}

/** The stored form of a state. */
export function storedAuditWindowState(s: AuditWindowState): unknown {
  return { version: STATE_VERSION, ...s };
}

const finished = (r: KeptRecord): FinishedJob => ({
  job_id: r[1],
  customer_id: r[2],
  model: r[3],
  completed_at: r[4],
  gpu_ms: r[5],
  status: r[6],
});

/**
 * The scheduled reconciliation's audit source. Each run resumes from the newest state (this
 * process's, or the stored one when it verified more) unless one run in `fullEvery` is due, the
 * window starts before the records kept, or there is none; a resumed read that is refused or
 * finds a fault is followed by a full read, whose result (records or failure) is the run's. A full
 * read that fails clears the state, so no later run resumes past a log found broken.
 */
export function createAuditWindow(o: AuditWindowOptions): AuditWindow {
  if (!Number.isSafeInteger(o.fullEvery) || o.fullEvery < 1)
    throw new RangeError("fullEvery must be a positive integer");
  let memory: AuditWindowState | undefined;

  async function newest(): Promise<AuditWindowState | undefined> {
    let stored: AuditWindowState | undefined;
    try {
      stored = parseAuditWindowState(await o.store.load());
    } catch {
      stored = undefined;
    }
    if (stored === undefined) return memory;
    if (memory === undefined || stored.resume.size > memory.resume.size) return stored;
    return memory;
  }

  /** Reads the log (on from `prev` when given) and keeps the records completed from `fromMs` on. */
  async function read(
    prev: AuditWindowState | undefined,
    fromMs: number,
  ): Promise<{ resume: AuditResume | undefined; rows: KeptRecord[] }> {
    const rows: KeptRecord[] = prev === undefined ? [] : prev.rows.filter((r) => r[4] >= fromMs);
    let resume: AuditResume | undefined;
    const entries = o.read({
      ...(prev === undefined
        ? {}
        : { resume: prev.resume, knownJobs: rows.map((r): [string, number] => [r[1], r[0]]) }),
      onResume: (r) => {
        resume = r;
      },
    });
    try {
      for await (const { index, record } of entries) {
        const at = Date.parse(record.completed_at);
        if (!(at >= fromMs)) continue;
        const model = `${record.family}/${record.model}`;
        rows.push([index, record.job_id, record.customer_id, model, at, record.gpu_ms, record.status]);
      }
    } catch (err) {
      // the newest leaves are under no checkpoint yet: everything a checkpoint covers was read
      if (!(err instanceof AuditTailUncovered)) throw err;
    }
    return { resume, rows };
  }

  async function save(state: AuditWindowState | null): Promise<void> {
    try {
      await o.store.save(state === null ? null : storedAuditWindowState(state));
    } catch (err) {
      o.onSaveError?.(err);
    }
  }

  return {
    async *jobs(fromMs, toMs) {
      const prev = await newest();
      let why: string | undefined =
        prev === undefined
          ? "no earlier read to resume from"
          : prev.resumed + 1 >= o.fullEvery
            ? `one run in ${o.fullEvery} reads the log in full`
            : fromMs < prev.keptFrom
              ? "the window starts before the records kept"
              : undefined;
      let got: Awaited<ReturnType<typeof read>> | undefined;
      if (prev !== undefined && why === undefined) {
        try {
          got = await read(prev, fromMs);
        } catch (err) {
          why = err instanceof Error ? err.message : String(err);
        }
      }
      const resumed = got !== undefined && prev !== undefined;
      if (got === undefined) {
        try {
          got = await read(undefined, fromMs);
        } catch (err) {
          memory = undefined;
          await save(null);
          throw err;
        }
      }
      const rows = got.rows;
      const state: AuditWindowState | undefined =
        got.resume === undefined
          ? undefined
          : {
              resume: got.resume,
              keptFrom: fromMs,
              rows,
              resumed: resumed ? prev.resumed + 1 : 0,
            };
      memory = state;
      await save(state ?? null);
      o.onRead?.({
        mode: resumed ? "resumed" : "full",
        from: resumed ? prev.resume.size : 0,
        size: got.resume?.size ?? 0,
        kept: rows.length,
        ...(why === undefined ? {} : { why }),
      });
      for (const r of rows) if (r[4] >= fromMs && r[4] < toMs) yield finished(r);
    },
  };
}
