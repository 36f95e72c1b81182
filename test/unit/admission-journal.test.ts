// The admissions journal on disk: buffered lines written at each flush and at close, one file per
// writer and UTC day, read back by window across writers; a line cut by a crash is skipped.
import { appendFileSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import type { Admission } from "../../src/core/reconcile-types.js";
import {
  createAdmissionJournal,
  pruneAdmissions,
  readAdmissions,
} from "../../src/infra/admission-journal.js";

const DAY = 86_400_000;
const T = Date.UTC(2026, 11, 7, 23, 59, 59, 900);

let dir: string;
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), "rg-admissions-"));
});
afterEach(() => {
  rmSync(dir, { recursive: true, force: true });
});

const admission = (i: number, at = T): Admission => ({
  job_id: `job_${i}`,
  customer_id: `c${i % 3}`,
  model: "flux/schnell",
  admitted_at: at,
});

async function readAll(from: number, to: number): Promise<Admission[]> {
  const out: Admission[] = [];
  for await (const a of readAdmissions(dir, from, to)) out.push(a);
  return out.sort((x, y) => (x.job_id < y.job_id ? -1 : 1));
}

describe("admissions journal", () => {
  it("writes nothing until a flush, then every line, in per-day files of the writer", async () => {
    const journal = createAdmissionJournal({ dir, writerId: "api-1", flushMs: 60_000 });
    journal.record(admission(1));
    journal.record(admission(2, T + 200)); // the next UTC day
    expect(readdirSync(dir)).toEqual([]);
    await journal.flush();
    expect(readdirSync(dir).sort()).toEqual(["2026-12-07", "2026-12-08"]);
    expect(readdirSync(join(dir, "2026-12-07"))).toEqual(["api-1.jsonl"]);
    expect(statSync(join(dir, "2026-12-07", "api-1.jsonl")).mode & 0o777).toBe(0o600);
    expect(readFileSync(join(dir, "2026-12-07", "api-1.jsonl"), "utf8")).toBe(
      `${JSON.stringify(admission(1))}\n`,
    );
    await journal.close();
    expect(await readAll(T - DAY, T + DAY)).toEqual([admission(1), admission(2, T + 200)]);
  });

  it("writes on its timer, and what is left at close", async () => {
    const journal = createAdmissionJournal({ dir, writerId: "api-1", flushMs: 20 });
    for (let i = 0; i < 50; i++) journal.record(admission(i));
    // the timer writes them, with no flush asked for
    for (let waited = 0; (await readAll(T - 1, T + 1)).length < 50; waited += 20) {
      expect(waited).toBeLessThan(10_000);
      await new Promise((r) => setTimeout(r, 20));
    }
    journal.record(admission(50));
    await journal.close();
    expect((await readAll(T - 1, T + 1)).length).toBe(51);
    // closed: no more lines taken
    journal.record(admission(51));
    expect((await readAll(T - 1, T + 1)).length).toBe(51);
  });

  it("reads every writer's files, only within the window, skipping a cut line", async () => {
    const a = createAdmissionJournal({ dir, writerId: "api-a", flushMs: 60_000 });
    const b = createAdmissionJournal({ dir, writerId: "api-b", flushMs: 60_000 });
    a.record(admission(1, T - 1_000));
    b.record(admission(2, T - 500));
    b.record(admission(3, T + 5_000));
    await Promise.all([a.close(), b.close()]);
    appendFileSync(join(dir, "2026-12-07", "api-a.jsonl"), '{"job_id":"job_cut","customer_i');
    expect((await readAll(T - 2_000, T)).map((x) => x.job_id)).toEqual(["job_1", "job_2"]);
    expect((await readAll(T - 700, T + 10_000)).map((x) => x.job_id)).toEqual(["job_2", "job_3"]);
    expect(await readAll(T + 10 * DAY, T + 11 * DAY)).toEqual([]);
  });

  it("keeps lines the disk refused and writes them at the next flush", async () => {
    const errors: unknown[] = [];
    // a file where the day's folder should be: the first flush fails
    const blocked = join(dir, "2026-12-07");
    appendFileSync(blocked, "not a folder");
    const journal = createAdmissionJournal({
      dir,
      writerId: "api-1",
      flushMs: 60_000,
      onError: (err) => errors.push(err),
    });
    journal.record(admission(1));
    await journal.flush();
    expect(errors.length).toBeGreaterThan(0);
    rmSync(blocked);
    await journal.close();
    expect((await readAll(T - 1, T + 1)).map((x) => x.job_id)).toEqual(["job_1"]);
    expect(journal.dropped()).toBe(0);
  });

  it("prunes whole days that ended before the retention's start, and nothing else", async () => {
    const journal = createAdmissionJournal({ dir, writerId: "api-1", flushMs: 60_000 });
    journal.record(admission(1, T - 2 * DAY));
    journal.record(admission(2, T - DAY));
    journal.record(admission(3, T));
    await journal.close();
    appendFileSync(join(dir, "notes.txt"), "not a day");
    // T - DAY's day ends at T's day's start: kept while beforeMs is inside it
    expect(await pruneAdmissions(dir, T - DAY)).toEqual(["2026-12-05"]);
    expect(readdirSync(dir).sort()).toEqual(["2026-12-06", "2026-12-07", "notes.txt"]);
    expect((await readAll(T - 3 * DAY, T + 1)).map((x) => x.job_id)).toEqual(["job_2", "job_3"]);
    expect(await pruneAdmissions(join(dir, "absent"), T)).toEqual([]);
  });
});
