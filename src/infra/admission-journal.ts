// The admissions journal (docs/decisions.md "Compliance"): every job an API process admitted, as one
// JSON line `{job_id, customer_id, model, admitted_at}` in `<dir>/<UTC day of admission>/<writer>.jsonl`
// — a record of the 202s that does not live in Redis, so the reconciliation can name the acknowledged
// jobs Redis lost (FLUSHALL, a failover). Lines are buffered in memory and written every `flushMs`
// (one append and one fsync per day file and flush) and at close: a request pays an array push, never
// a file system call. A process that dies loses what it buffered since its last flush.
import { createReadStream } from "node:fs";
import { mkdir, open, readdir, rm, type FileHandle } from "node:fs/promises";
import { join } from "node:path";
import { createInterface } from "node:readline";
import type { Admission } from "../core/reconcile-types.js";
import type { AdmissionLog } from "../core/ports.js";
import { DAY_MS, utcDay } from "../core/time.js";
import { PRIVATE_DIR_MODE } from "./private-dir.js";

/** Day files a writer keeps open (admissions cross midnight once a day). */
const OPEN_FILES_MAX = 2;
/**
 * Lines held while the disk refuses them (full, read-only): beyond this the oldest are dropped and
 * counted, so a broken disk cannot take the API's memory.
 */
const PENDING_MAX = 1_000_000;

export interface AdmissionJournal extends AdmissionLog {
  /** Writes what is buffered now; resolves once it is on disk (fsynced). */
  flush(): Promise<void>;
  /** Lines dropped because the disk refused them for too long (see PENDING_MAX). */
  dropped(): number;
  /** Stops the timer, flushes and closes the files. */
  close(): Promise<void>;
}

export interface AdmissionJournalOptions {
  /** DATA_DIR/admissions. */
  readonly dir: string;
  /** This process's file name (host, pid and a random part). */
  readonly writerId: string;
  /** ADMISSIONS_FLUSH_MS. */
  readonly flushMs: number;
  /** Told once per failed flush (the lines stay buffered for the next). */
  readonly onError?: (err: unknown) => void;
}

function isAdmission(v: unknown): v is Admission {
  const a = v as Partial<Admission> | null;
  return (
    typeof a === "object" &&
    a !== null &&
    typeof a.job_id === "string" &&
    typeof a.customer_id === "string" &&
    typeof a.model === "string" &&
    typeof a.admitted_at === "number"
  );
}

export function createAdmissionJournal(o: AdmissionJournalOptions): AdmissionJournal {
  if (!/^[A-Za-z0-9._-]{1,128}$/.test(o.writerId)) throw new TypeError("writerId must be a file name");
  let pending: Admission[] = [];
  let dropped = 0;
  let flushing: Promise<void> | undefined;
  let closed = false;
  const files = new Map<string, FileHandle>();

  const fileOf = async (day: string): Promise<FileHandle> => {
    let f = files.get(day);
    if (f === undefined) {
      const dayDir = join(o.dir, day);
      await mkdir(dayDir, { recursive: true, mode: PRIVATE_DIR_MODE });
      f = await open(join(dayDir, `${o.writerId}.jsonl`), "a", 0o600);
      files.set(day, f);
      while (files.size > OPEN_FILES_MAX) {
        const [oldest, handle] = files.entries().next().value as [string, FileHandle];
        files.delete(oldest);
        await handle.close();
      }
    }
    return f;
  };

  const writeOut = async (): Promise<void> => {
    while (pending.length > 0) {
      const batch = pending;
      pending = [];
      const byDay = new Map<string, string[]>();
      for (const a of batch) {
        const day = utcDay(a.admitted_at);
        let lines = byDay.get(day);
        if (lines === undefined) byDay.set(day, (lines = []));
        lines.push(JSON.stringify(a));
      }
      try {
        for (const [day, lines] of byDay) {
          const f = await fileOf(day);
          await f.appendFile(`${lines.join("\n")}\n`);
          await f.sync();
        }
      } catch (err) {
        // kept for the next flush (a day written before the error is written again: readers take
        // each job once)
        pending = batch.concat(pending);
        if (pending.length > PENDING_MAX) {
          dropped += pending.length - PENDING_MAX;
          pending = pending.slice(pending.length - PENDING_MAX);
        }
        o.onError?.(err);
        return;
      }
    }
  };

  const flush = (): Promise<void> => {
    flushing ??= writeOut().finally(() => (flushing = undefined));
    return flushing;
  };
  const timer = setInterval(() => void flush(), o.flushMs);
  timer.unref();

  return {
    record(a) {
      if (closed) return;
      pending.push(a);
    },
    async flush() {
      // a flush running now may have taken its batch before the latest lines: one more after it
      await flush();
      if (pending.length > 0) await flush();
    },
    dropped: () => dropped,
    async close() {
      if (closed) return;
      closed = true;
      clearInterval(timer);
      await flush();
      if (pending.length > 0) await flush();
      for (const f of files.values()) await f.close();
      files.clear();
    },
  };
}

/**
 * The journal's admissions of [fromMs, toMs), every writer's, in no particular order; a job may come
 * more than once (a flush retried after an error). Lines cut by a crash are skipped.
 */
export async function* readAdmissions(dir: string, fromMs: number, toMs: number): AsyncGenerator<Admission> {
  for (let day = Math.floor(fromMs / DAY_MS) * DAY_MS; day < toMs; day += DAY_MS) {
    const dayDir = join(dir, utcDay(day));
    let names: string[];
    try {
      names = (await readdir(dayDir)).filter((n) => n.endsWith(".jsonl")).sort();
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === "ENOENT") continue;
      throw err;
    }
    for (const name of names) {
      const lines = createInterface({ input: createReadStream(join(dayDir, name)), crlfDelay: Infinity });
      for await (const line of lines) {
        if (line === "") continue;
        let parsed: unknown;
        try {
          parsed = JSON.parse(line);
        } catch {
          continue; // cut by a crash mid-write
        }
        if (isAdmission(parsed) && parsed.admitted_at >= fromMs && parsed.admitted_at < toMs) yield parsed;
      }
    }
  }
}

/**
 * Removes the journal's days that ended before `beforeMs` (whole days only); returns them. The
 * scheduled reconciliation calls it with its reports' retention: older windows cannot be judged for
 * lost jobs any more.
 */
export async function pruneAdmissions(dir: string, beforeMs: number): Promise<string[]> {
  let days: string[];
  try {
    days = await readdir(dir);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") return [];
    throw err;
  }
  const removed: string[] = [];
  for (const day of days) {
    const start = /^\d{4}-\d{2}-\d{2}$/.test(day) ? Date.parse(`${day}T00:00:00Z`) : NaN;
    if (!Number.isFinite(start) || start + DAY_MS > beforeMs) continue;
    await rm(join(dir, day), { recursive: true, force: true });
    removed.push(day);
  }
  return removed;
}
