// The billing ledger as append-only files (docs/decisions.md "Billing"): one JSON line per entry in
// `<dir>/<UTC day of completion>/<writer>.jsonl`, each process its own file per day, appended and
// fsynced in groups (the entries that arrive while a sync runs go to disk together), so an append
// resolves only when its line is durable. Readers take each job once: a line can repeat only when a
// writer died between its sync and the Redis step that records it, and then it is the same entry.
import { createReadStream } from "node:fs";
import { mkdir, open, readdir, type FileHandle } from "node:fs/promises";
import { join } from "node:path";
import { createInterface } from "node:readline";
import type { LedgerEntry } from "../core/billing.js";
import type { Ledger } from "../core/ports.js";
import { PRIVATE_DIR_MODE } from "./private-dir.js";
import { DAY_MS, utcDay } from "../core/time.js";

/** Open day files a writer keeps (entries of older days are rare: late settles). */
const OPEN_FILES_MAX = 4;

interface DayFile {
  handle: FileHandle;
  pending: { line: string; resolve: () => void; reject: (err: unknown) => void }[];
  flushing: Promise<void> | undefined;
}

function isEntry(v: unknown): v is LedgerEntry {
  const e = v as Partial<LedgerEntry> | null;
  return (
    typeof e === "object" &&
    e !== null &&
    typeof e.job_id === "string" &&
    typeof e.customer_id === "string" &&
    typeof e.completed_at === "number" &&
    typeof e.gpu_ms === "number" &&
    typeof e.cost_micro_usd === "number"
  );
}

export function createLedgerFiles(opts: { dir: string; writerId: string }): Ledger {
  if (!/^[A-Za-z0-9._-]{1,128}$/.test(opts.writerId)) throw new TypeError("writerId must be a file name");
  const files = new Map<string, Promise<DayFile>>();

  const fileOf = (day: string): Promise<DayFile> => {
    let f = files.get(day);
    if (f === undefined) {
      f = (async () => {
        const dayDir = join(opts.dir, day);
        await mkdir(dayDir, { recursive: true, mode: PRIVATE_DIR_MODE });
        const handle = await open(join(dayDir, `${opts.writerId}.jsonl`), "a", 0o600);
        return { handle, pending: [], flushing: undefined };
      })();
      f.catch(() => files.delete(day));
      files.set(day, f);
      // the oldest day files close once nothing waits on them
      while (files.size > OPEN_FILES_MAX) {
        const [oldest, file] = files.entries().next().value as [string, Promise<DayFile>];
        files.delete(oldest);
        // a day file that never opened has nothing to close; one that fails to close is the OS's
        file
          .then(async (d) => {
            await d.flushing;
            await d.handle.close();
          })
          .catch(() => undefined);
      }
    }
    return f;
  };

  const flush = async (f: DayFile): Promise<void> => {
    while (f.pending.length > 0) {
      const batch = f.pending.splice(0);
      try {
        await f.handle.appendFile(batch.map((p) => p.line).join(""));
        await f.handle.sync();
        for (const p of batch) p.resolve();
      } catch (err) {
        for (const p of batch) p.reject(err);
      }
    }
    f.flushing = undefined;
  };

  async function* dayEntries(day: string): AsyncGenerator<LedgerEntry> {
    let names: string[];
    try {
      names = (await readdir(join(opts.dir, day))).filter((n) => n.endsWith(".jsonl")).sort();
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === "ENOENT") return;
      throw err;
    }
    for (const name of names) {
      const lines = createInterface({
        input: createReadStream(join(opts.dir, day, name)),
        crlfDelay: Infinity,
      });
      for await (const line of lines) {
        if (line === "") continue;
        let parsed: unknown;
        try {
          parsed = JSON.parse(line);
        } catch {
          continue; // a line cut by a crash mid-write (never synced, so never acknowledged)
        }
        if (isEntry(parsed)) yield parsed;
      }
    }
  }

  return {
    async append(entry) {
      const f = await fileOf(utcDay(entry.completed_at));
      const done = new Promise<void>((resolve, reject) => {
        f.pending.push({ line: `${JSON.stringify(entry)}\n`, resolve, reject });
      });
      f.flushing ??= flush(f);
      return done;
    },

    async contains(entry) {
      for await (const e of dayEntries(utcDay(entry.completed_at)))
        if (e.job_id === entry.job_id) return true;
      return false;
    },

    async *read(fromMs, toMs, customer) {
      const seen = new Set<string>();
      for (let day = Math.floor(fromMs / DAY_MS) * DAY_MS; day < toMs; day += DAY_MS) {
        for await (const e of dayEntries(utcDay(day))) {
          if (e.completed_at < fromMs || e.completed_at >= toMs) continue;
          if (customer !== undefined && e.customer_id !== customer) continue;
          if (seen.has(e.job_id)) continue;
          seen.add(e.job_id);
          yield e;
        }
      }
    },

    async close() {
      const all = [...files.values()];
      files.clear();
      for (const f of all) {
        const d = await f.catch(() => undefined);
        if (d === undefined) continue;
        await d.flushing;
        await d.handle.close();
      }
    },
  };
}
