// Reading the audit log on from where the last read stopped (docs/decisions.md "Compliance"): a
// resumed read of a growing log hands out exactly what a full read adds and leaves the same resume
// point; a fault in what was appended is caught; a leaf changed below what was verified is not (a
// resumed read does not read it), so the scheduled reader (pipeline/audit-window.ts) reads the
// whole log every COMPLIANCE_FULL_VERIFY_EVERY runs and after any refused resume, and never resumes
// past a log found broken; its state survives a restart. On real files (the appender's layout,
// test/helpers/audit-log.ts); no Redis.
import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { AuditLogBroken } from "../../src/core/audit-log-check.js";
import type { AuditResume } from "../../src/core/audit-resume.js";
import type { FinishedJob } from "../../src/core/reconcile-types.js";
import { openAuditFiles } from "../../src/infra/audit-files.js";
import { AuditResumeStale, readAuditLog, type AuditLogEntry } from "../../src/infra/audit-log-reader.js";
import { hexOf, objectPath } from "../../src/infra/fs-blob-layout.js";
import { createFsBlobStore } from "../../src/infra/fs-blob-store.js";
import { createJsonFile } from "../../src/infra/json-file.js";
import { createAuditWindow, type AuditWindowRead } from "../../src/pipeline/audit-window.js";
import { auditSource } from "../../src/pipeline/compliance.js";
import {
  buildAuditLog,
  indexLines,
  rewriteSegments,
  segmentBlob,
  segmentsOf,
  type BuiltLog,
} from "../helpers/audit-log.js";

const S = 64;
/** Checkpoint sizes: the stages the log grows through (mid-segment, on a segment's end, one more). */
const STAGES = [300, 500, 512, 513, 700, 1_000, 1_003];
const dirs: string[] = [];
let full: BuiltLog;
let indexText: string[];
let checkpointText: string[];

const tempDir = (): string => {
  const dir = mkdtempSync(join(tmpdir(), "rg-audit-resume-"));
  dirs.push(dir);
  return dir;
};
const lines = (path: string) =>
  readFileSync(path, "utf8")
    .split("\n")
    .filter((l) => l !== "")
    .map((l) => `${l}\n`);

/** Index lines the appender had written when the checkpoint of stage k was signed. */
function indexLinesAt(k: number): number {
  let n = 0;
  let size = 0;
  for (const cut of STAGES.slice(0, k + 1)) {
    n += Math.ceil(cut / S) - Math.floor(size / S);
    size = cut;
  }
  return n;
}

/** A copy of the log's files as they stood at stage k (the blobs are all there, as the appender stores them first). */
function logAt(k: number, dir = tempDir()): string {
  cpSync(full.dataDir, dir, { recursive: true });
  grow(dir, k);
  return dir;
}

/** Brings a copy's index and checkpoints to stage k: what the appender appends between runs. */
function grow(dir: string, k: number): void {
  writeFileSync(join(dir, "audit", "index.jsonl"), indexText.slice(0, indexLinesAt(k)).join(""));
  writeFileSync(join(dir, "audit", "checkpoints.jsonl"), checkpointText.slice(0, k + 1).join(""));
}

async function readAll(
  dir: string,
  opts: Parameters<typeof readAuditLog>[1] = {},
): Promise<{ entries: AuditLogEntry[]; resume: AuditResume | undefined; planned: number }> {
  const entries: AuditLogEntry[] = [];
  let resume: AuditResume | undefined;
  let planned = 0;
  for await (const e of readAuditLog(dir, {
    segmentSize: S,
    ...opts,
    onResume: (r) => (resume = r),
    onPlan: (p) => (planned = p.segments),
  }))
    entries.push(e);
  return { entries, resume, planned };
}

/** Changes the first digit of `gpu_ms` in the first leaf of `bytes` from `at` (still a canonical record). */
function changeGpuMs(bytes: Buffer, at: number): void {
  const gpu = bytes.indexOf(Buffer.from('"gpu_ms":'), at) + 9;
  bytes[gpu] = bytes[gpu] === 0x31 ? 0x32 : 0x31;
}

/** Changes leaf `index` where its segment's blob is stored (the CAS file, not its digest). */
function flipLeafInPlace(dir: string, index: number): void {
  const seg = Math.floor(index / S);
  const line = indexLines(dir)
    .filter((l) => l.segment === seg)
    .at(-1)!;
  const path = objectPath(join(dir, "cas"), hexOf(line.digest));
  const bytes = readFileSync(path);
  let at = 0;
  for (let i = seg * S; i < index; i++) at = bytes.indexOf(0x0a, at) + 1;
  changeGpuMs(bytes, at);
  writeFileSync(path, bytes);
}

beforeAll(async () => {
  const dir = tempDir();
  full = await buildAuditLog(dir, { segmentSize: S, count: STAGES.at(-1)!, checkpointAt: STAGES });
  indexText = lines(join(dir, "audit", "index.jsonl"));
  checkpointText = lines(join(dir, "audit", "checkpoints.jsonl"));
  expect(checkpointText).toHaveLength(STAGES.length);
  expect(indexText).toHaveLength(indexLinesAt(STAGES.length - 1));
});

afterAll(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

describe("a resumed read of the audit log", () => {
  it("hands out what a full read adds as the log grows, and leaves the same resume point", async () => {
    const dir = logAt(0);
    let { entries, resume } = await readAll(dir);
    const seen = [...entries];
    for (let k = 1; k < STAGES.length; k++) {
      grow(dir, k);
      const before = resume!;
      const resumed = await readAll(dir, { resume: before });
      const whole = await readAll(dir);
      // only what was appended: the new records, from the segment holding the old size on
      expect(resumed.entries.map((e) => e.index)).toEqual(
        whole.entries.map((e) => e.index).filter((i) => i >= before.size),
      );
      expect(resumed.planned).toBe(Math.ceil(STAGES[k]! / S) - Math.floor(before.size / S));
      seen.push(...resumed.entries);
      expect(seen).toEqual(whole.entries);
      expect(resumed.resume).toEqual(whole.resume);
      expect(resumed.resume!.size).toBe(STAGES[k]);
      resume = resumed.resume;
      entries = whole.entries;
    }
    expect(entries.map((e) => e.record)).toEqual(full.records);
  });

  it("stops at the newest checkpoint when the index runs ahead of it, and goes on from there", async () => {
    const dir = logAt(1);
    const { resume } = await readAll(dir);
    // stage 4's index lines without its checkpoints: leaves past 500 are under no checkpoint yet
    writeFileSync(join(dir, "audit", "index.jsonl"), indexText.slice(0, indexLinesAt(4)).join(""));
    const ahead = readAll(dir, { resume: resume! });
    await expect(ahead).rejects.toMatchObject({ name: "AuditTailUncovered", entry: { leaf_index: 500 } });
    let next: AuditResume | undefined;
    const got: number[] = [];
    try {
      for await (const e of readAuditLog(dir, {
        segmentSize: S,
        resume: resume!,
        onResume: (r) => (next = r),
      }))
        got.push(e.index);
    } catch (err) {
      expect((err as Error).name).toBe("AuditTailUncovered");
    }
    expect(got).toEqual([]);
    expect(next?.size).toBe(500);
    grow(dir, 4);
    const on = await readAll(dir, { resume: next! });
    expect(on.entries.map((e) => e.index)).toEqual(Array.from({ length: 200 }, (_, i) => 500 + i));
    expect(on.resume).toEqual((await readAll(dir)).resume);
  });

  it("catches a changed leaf among those appended since", async () => {
    const dir = logAt(2);
    const { resume } = await readAll(dir);
    grow(dir, 5);
    flipLeafInPlace(dir, 800);
    const err = await readAll(dir, { resume: resume! }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(AuditLogBroken);
    expect((err as AuditLogBroken).entry).toMatchObject({ segment: 12 });
    expect((err as AuditLogBroken).message).toMatch(/do not hash to/);
  });

  it("catches a rewritten copy of the segment it reads again, below the size verified", async () => {
    const dir = logAt(4); // 700 leaves: segment 10 holds 640..699
    const { resume } = await readAll(dir);
    // the next append's line for segment 10 names a blob whose leaf 650 was changed
    grow(dir, 5);
    const leaves = full.leaves.slice(640, 704).map((l) => Buffer.from(l));
    changeGpuMs(leaves[10]!, 0);
    const store = createFsBlobStore({ root: join(dir, "cas") });
    const digest = await store.put(segmentBlob(leaves));
    const text = indexText.slice(0, indexLinesAt(5));
    text[text.findIndex((l) => l.includes('"segment":10,') && l.includes('"count":64'))] =
      `${JSON.stringify({ segment: 10, digest, count: 64 })}\n`;
    writeFileSync(join(dir, "audit", "index.jsonl"), text.join(""));
    const err = await readAll(dir, { resume: resume! }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(AuditLogBroken);
    expect((err as AuditLogBroken).entry).toMatchObject({ segment: 10, leaf_index: 640 });
    expect((err as Error).message).toMatch(/640\.\.699 are not the ones verified before/);
    // a full read finds the checkpoint whose root the changed leaf breaks
    await expect(readAll(dir)).rejects.toMatchObject({ entry: { leaf_index: 513 } });
  });

  it("does not see a leaf changed below the size verified (only a full read does)", async () => {
    const dir = logAt(3);
    const { resume } = await readAll(dir);
    flipLeafInPlace(dir, 100);
    grow(dir, 6);
    const resumed = await readAll(dir, { resume: resume! });
    expect(resumed.entries).toHaveLength(STAGES[6]! - STAGES[3]!);
    await expect(readAll(dir)).rejects.toMatchObject({ entry: { segment: 1 } });
  });

  it("refuses files that are not the ones it read: rewritten index, cut checkpoints, new key, new log id", async () => {
    const cases: [string, (dir: string) => Promise<void> | void, RegExp][] = [
      [
        "index rewritten",
        (dir) => rewriteSegments(dir, segmentsOf(full.leaves.slice(0, STAGES[2]), S)),
        /index\.jsonl/,
      ],
      [
        "checkpoints cut",
        (dir) => writeFileSync(join(dir, "audit", "checkpoints.jsonl"), checkpointText.slice(0, 1).join("")),
        /checkpoints\.jsonl/,
      ],
      ["key rotated", async (dir) => void (await openAuditFiles(dir).rotateKey()), /key set/],
      ["log id", (dir) => writeFileSync(join(dir, "audit", "log-id"), "rg-other\n"), /log id/],
      [
        "sealed segment restated",
        (dir) =>
          writeFileSync(
            join(dir, "audit", "index.jsonl"),
            [...indexText.slice(0, indexLinesAt(2)), indexText[0]!].join(""),
          ),
        /restates segment 0/,
      ],
    ];
    for (const [what, change, why] of cases) {
      const dir = logAt(2);
      const { resume } = await readAll(dir);
      await change(dir);
      const err = await readAll(dir, { resume: resume! }).catch((e: unknown) => e);
      expect(err, what).toBeInstanceOf(AuditResumeStale);
      expect((err as Error).message, what).toMatch(why);
    }
  });
});

describe("the scheduled runs' audit reader", () => {
  const FROM = Date.UTC(2026, 11, 1);
  const jobsOf = async (xs: AsyncIterable<FinishedJob>) => {
    const out: FinishedJob[] = [];
    for await (const j of xs) out.push(j);
    return out.sort((a, b) => a.job_id.localeCompare(b.job_id));
  };
  const windowOn = (dir: string, fullEvery: number, file = join(tempDir(), "audit-window.json")) => {
    const reads: AuditWindowRead[] = [];
    const window = createAuditWindow({
      read: (r) => readAuditLog(dir, { segmentSize: S, ...r }),
      store: createJsonFile(file),
      fullEvery,
      onRead: (r) => reads.push(r),
    });
    return { window, reads, file };
  };
  /** The full read's jobs of a window, as the CLI reads them. */
  const fullJobs = (dir: string, from: number, to: number) =>
    jobsOf(auditSource(() => readAuditLog(dir, { segmentSize: S })).jobs(from, to));

  it("gives a full read's jobs on a growing log, reading in full one run in N", async () => {
    const dir = logAt(0);
    const { window, reads } = windowOn(dir, 3);
    // windows that move on as the log grows (the records' completed_at advance ~1 s per leaf)
    for (let k = 0; k < STAGES.length; k++) {
      grow(dir, k);
      const from = FROM + k * 60_000;
      const to = FROM + 2_000_000;
      expect(await jobsOf(window.jobs(from, to)), `stage ${k}`).toEqual(await fullJobs(dir, from, to));
    }
    expect(reads.map((r) => r.mode)).toEqual([
      "full",
      "resumed",
      "resumed",
      "full",
      "resumed",
      "resumed",
      "full",
    ]);
    expect(reads[1]).toMatchObject({ from: STAGES[0], size: STAGES[1] });
    // what is kept is what the windows to come can cover
    expect(reads.at(-1)!.kept).toBe(
      full.records.filter((r) => Date.parse(r.completed_at) >= FROM + 6 * 60_000).length,
    );
  });

  it("reads in full when a window starts before the records kept", async () => {
    const dir = logAt(1);
    const { window, reads } = windowOn(dir, 100);
    await jobsOf(window.jobs(FROM + 200_000, FROM + 400_000));
    grow(dir, 2);
    const earlier = await jobsOf(window.jobs(FROM, FROM + 400_000));
    expect(earlier).toEqual(await fullJobs(dir, FROM, FROM + 400_000));
    expect(reads.map((r) => [r.mode, r.why])).toEqual([
      ["full", "no earlier read to resume from"],
      ["full", "the window starts before the records kept"],
    ]);
  });

  it("catches a changed leaf below what it verified at the next full read, and resumes no more", async () => {
    const dir = logAt(2);
    const { window, reads } = windowOn(dir, 3);
    await jobsOf(window.jobs(FROM, FROM + 2_000_000)); // full
    flipLeafInPlace(dir, 40);
    grow(dir, 3);
    await jobsOf(window.jobs(FROM, FROM + 2_000_000)); // resumed: the change is below what it verified
    grow(dir, 4);
    await jobsOf(window.jobs(FROM, FROM + 2_000_000)); // resumed
    expect(reads.map((r) => r.mode)).toEqual(["full", "resumed", "resumed"]);
    // the third run after the full one reads in full: the change is found, the source fails
    await expect(jobsOf(window.jobs(FROM, FROM + 2_000_000))).rejects.toMatchObject({
      entry: { segment: 0 },
    });
    // and every run after it reads in full again (none resumes past a log found broken)
    grow(dir, 5);
    await expect(jobsOf(window.jobs(FROM, FROM + 2_000_000))).rejects.toMatchObject({
      entry: { segment: 0 },
    });
    expect(reads).toHaveLength(3);
  });

  it("does not resume past a log a fallback full read found broken", async () => {
    const dir = logAt(2);
    const { window, reads } = windowOn(dir, 100);
    await jobsOf(window.jobs(FROM + 60_000, FROM + 2_000_000)); // full
    flipLeafInPlace(dir, 40);
    grow(dir, 3);
    // a window starting before the records kept: read in full, and the change is found
    await expect(jobsOf(window.jobs(FROM, FROM + 2_000_000))).rejects.toMatchObject({
      entry: { segment: 0 },
    });
    // the next run, whose window the kept records would cover, reads in full too
    grow(dir, 4);
    await expect(jobsOf(window.jobs(FROM + 60_000, FROM + 2_000_000))).rejects.toMatchObject({
      entry: { segment: 0 },
    });
    expect(reads.map((r) => r.mode)).toEqual(["full"]);
  });

  it("falls back to a full read when what was appended does not verify, and reports what it finds", async () => {
    const dir = logAt(2);
    const { window, reads } = windowOn(dir, 100);
    await jobsOf(window.jobs(FROM, FROM + 2_000_000));
    grow(dir, 5);
    flipLeafInPlace(dir, 900);
    await expect(jobsOf(window.jobs(FROM, FROM + 2_000_000))).rejects.toMatchObject({
      entry: { segment: 14 },
    });
    // a key rotation between runs: the resumed read is refused, the full read finds the log sound
    const other = logAt(2);
    const w2 = windowOn(other, 100);
    await jobsOf(w2.window.jobs(FROM, FROM + 2_000_000));
    await openAuditFiles(other).rotateKey();
    grow(other, 3);
    expect(await jobsOf(w2.window.jobs(FROM, FROM + 2_000_000))).toEqual(
      await fullJobs(other, FROM, FROM + 2_000_000),
    );
    expect(w2.reads.at(-1)).toMatchObject({ mode: "full", why: expect.stringMatching(/key set changed/) });
    expect(reads).toHaveLength(1);
  });

  it("resumes after a restart from the state under DATA_DIR, and starts over from a damaged one", async () => {
    const dir = logAt(1);
    const first = windowOn(dir, 100);
    await jobsOf(first.window.jobs(FROM, FROM + 2_000_000));
    grow(dir, 3);
    // another process (or this one restarted) with the same state file
    const second = windowOn(dir, 100, first.file);
    expect(await jobsOf(second.window.jobs(FROM, FROM + 2_000_000))).toEqual(
      await fullJobs(dir, FROM, FROM + 2_000_000),
    );
    expect(second.reads).toEqual([
      expect.objectContaining({ mode: "resumed", from: STAGES[1], size: STAGES[3] }),
    ]);
    writeFileSync(first.file, '{"version":1,"resume":{"size":"x"}}');
    grow(dir, 4);
    const third = windowOn(dir, 100, first.file);
    expect(await jobsOf(third.window.jobs(FROM, FROM + 2_000_000))).toEqual(
      await fullJobs(dir, FROM, FROM + 2_000_000),
    );
    expect(third.reads).toEqual([expect.objectContaining({ mode: "full", size: STAGES[4] })]);
  });
});
