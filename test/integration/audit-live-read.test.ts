// Reading an audit log while its appender writes (docs/decisions.md "Audit log", "Compliance"): an
// append landing between the reader's reads of checkpoints.jsonl and index.jsonl never makes a
// consistent log look broken (at most its newest leaves are not under a checkpoint read yet), and
// leaves not under a checkpoint yet are a typed finding (AuditTailUncovered, `uncovered_tail`) that
// the reconciliation's reader stops at, while every other fault still fails it. On files only (the
// appender's layout, test/helpers/audit-log.ts); no Redis.
import { appendFileSync, cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { AuditLogBroken, AuditTailUncovered } from "../../src/core/audit-log-check.js";
import { openAuditFiles } from "../../src/infra/audit-files.js";
import { readAuditLog, verifyAuditLog, type AuditLogFiles } from "../../src/infra/audit-log-reader.js";
import { complianceAuditFor } from "../../src/main/compliance.js";
import { loadSettings } from "../../src/main/settings.js";
import { buildAuditLog, rewriteSegments, segmentsOf, type BuiltLog } from "../helpers/audit-log.js";

const S = 64;
/** Leaves under the first checkpoint, and leaves the next append adds (crossing a segment's end). */
const FIRST = 1_000;
const MORE = 100;
const dirs: string[] = [];
/** The whole log: FIRST leaves with a checkpoint, then MORE leaves with another. */
let full: BuiltLog;
/** index.jsonl and checkpoints.jsonl of the whole log, by line. */
let indexText: string[];
let checkpointText: string[];
/** Index lines of the first append (segments 0..⌈FIRST/S⌉-1). */
const firstIndexLines = Math.ceil(FIRST / S);

const tempDir = (): string => {
  const dir = mkdtempSync(join(tmpdir(), "rg-audit-live-"));
  dirs.push(dir);
  return dir;
};
const lines = (path: string) =>
  readFileSync(path, "utf8")
    .split("\n")
    .filter((l) => l !== "")
    .map((l) => `${l}\n`);

/**
 * A copy of the log as it stood after the first append (its blobs, the first index lines and the
 * first checkpoint), and the second append as the appender makes it: the index lines, then the
 * checkpoint (the blobs are in the CAS already, as the appender stores them first).
 */
function logAfterFirstAppend(): { dir: string; indexOnly: () => void; secondAppend: () => void } {
  const dir = tempDir();
  cpSync(full.dataDir, dir, { recursive: true });
  writeFileSync(join(dir, "audit", "index.jsonl"), indexText.slice(0, firstIndexLines).join(""));
  writeFileSync(join(dir, "audit", "checkpoints.jsonl"), checkpointText.slice(0, 1).join(""));
  const indexOnly = () =>
    appendFileSync(join(dir, "audit", "index.jsonl"), indexText.slice(firstIndexLines).join(""));
  return {
    dir,
    indexOnly,
    secondAppend: () => {
      indexOnly();
      appendFileSync(join(dir, "audit", "checkpoints.jsonl"), checkpointText.slice(1).join(""));
    },
  };
}

/** The log's files with `between` run once, right after the first of the index and checkpoint reads. */
function filesAppendingBetweenReads(dir: string, between: () => void): AuditLogFiles {
  const real = openAuditFiles(dir);
  let done = false;
  const once = <T>(value: T): T => {
    if (!done) {
      done = true;
      between();
    }
    return value;
  };
  return {
    readIndexLines: async () => once(await real.readIndexLines()),
    readCheckpointLines: async () => once(await real.readCheckpointLines()),
    readLogId: () => real.readLogId(),
    jwks: () => real.jwks(),
  };
}

/** Every index a read yields, and what it threw (undefined when it ended cleanly). */
async function readAll(
  records: AsyncIterable<{ index?: number; record: { job_id: string } }>,
): Promise<{ jobs: string[]; error: unknown }> {
  const jobs: string[] = [];
  try {
    for await (const { record } of records) jobs.push(record.job_id);
  } catch (error) {
    return { jobs, error };
  }
  return { jobs, error: undefined };
}

const jobsOf = (n: number) => full.records.slice(0, n).map((r) => r.job_id);

beforeAll(async () => {
  full = await buildAuditLog(tempDir(), {
    count: FIRST + MORE,
    segmentSize: S,
    checkpointAt: [FIRST, FIRST + MORE],
  });
  indexText = lines(join(full.dataDir, "audit", "index.jsonl"));
  checkpointText = lines(join(full.dataDir, "audit", "checkpoints.jsonl"));
  expect(checkpointText).toHaveLength(2);
  expect(indexText.length).toBeGreaterThan(firstIndexLines);
}, 60_000);
afterAll(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

describe("an audit log read while its appender writes", () => {
  it("an append between the reader's two reads never makes the consistent log look broken", async () => {
    const { dir, secondAppend } = logAfterFirstAppend();
    const files = filesAppendingBetweenReads(dir, secondAppend);
    const read = await readAll(readAuditLog(dir, { files }));
    // what the checkpoints read cover is handed out, verified; the leaves appended meanwhile are at
    // most an uncovered tail — never "dropped or truncated", "tampered", or a root that differs
    expect(read.jobs).toEqual(jobsOf(FIRST));
    expect(read.error, String(read.error)).toBeInstanceOf(AuditTailUncovered);
    expect((read.error as AuditTailUncovered).entry).toMatchObject({
      leaf_index: FIRST,
      uncovered_tail: true,
    });
    // and the log, read again once the append is whole, verifies entirely
    expect(await verifyAuditLog(dir)).toMatchObject({ ok: true, verified: FIRST + MORE, checkpoints: 2 });
  });

  it("the same append during `audit verify`'s read: consistent so far, its new tail not yet signed", async () => {
    const { dir, secondAppend } = logAfterFirstAppend();
    const report = await verifyAuditLog(dir, { files: filesAppendingBetweenReads(dir, secondAppend) });
    // a verify holds every leaf to a checkpoint: the tail read without its checkpoint is the one
    // finding, flagged as such (a live log's appender signs it within AUDIT_CHECKPOINT_MS)
    expect(report).toMatchObject({ ok: false, verified: FIRST, leaves: FIRST + MORE, checkpoints: 1 });
    expect(report.bad).toMatchObject({ leaf_index: FIRST, uncovered_tail: true });
  });
});

describe("leaves under no checkpoint yet", () => {
  it("are a typed finding: every covered record handed out, then AuditTailUncovered", async () => {
    const { dir, indexOnly } = logAfterFirstAppend();
    indexOnly(); // committed and indexed; the checkpoint not signed yet
    const read = await readAll(readAuditLog(dir));
    expect(read.jobs).toEqual(jobsOf(FIRST));
    expect(read.error).toBeInstanceOf(AuditTailUncovered);
    expect((read.error as AuditTailUncovered).entry).toMatchObject({
      leaf_index: FIRST,
      segment: Math.floor(FIRST / S),
      uncovered_tail: true,
    });
    const report = await verifyAuditLog(dir);
    expect(report).toMatchObject({ ok: false, verified: FIRST, leaves: FIRST + MORE });
    expect(report.bad?.uncovered_tail).toBe(true);
  });

  it("the reconciliation's reader stops at the newest checkpoint there, and fails on anything else", async () => {
    const { dir, indexOnly } = logAfterFirstAppend();
    indexOnly();
    const auditOf = (d: string) =>
      complianceAuditFor(loadSettings({ DATA_DIR: d, AUDIT_SEGMENT_SIZE: String(S) })).log!;
    expect(await readAll(auditOf(dir)())).toEqual({ jobs: jobsOf(FIRST), error: undefined });

    // a changed leaf under a checkpoint: the read fails, with the plain error
    const changed = logAfterFirstAppend();
    const leaves = [...full.leaves.slice(0, FIRST)];
    leaves[FIRST - 10] = leaves[FIRST - 11]!;
    await rewriteSegments(changed.dir, segmentsOf(leaves, S));
    const broken = await readAll(auditOf(changed.dir)());
    expect(broken.error).toBeInstanceOf(AuditLogBroken);
    expect(broken.error).not.toBeInstanceOf(AuditTailUncovered);

    // a checkpoint past the leaves the log holds (a cut tail): fails too, though it is at the end
    const cut = logAfterFirstAppend();
    appendFileSync(join(cut.dir, "audit", "checkpoints.jsonl"), checkpointText.slice(1).join(""));
    const truncated = await readAll(auditOf(cut.dir)());
    expect(truncated.jobs).toEqual(jobsOf(FIRST));
    expect(truncated.error).toBeInstanceOf(AuditLogBroken);
    expect(truncated.error).not.toBeInstanceOf(AuditTailUncovered);
    expect((truncated.error as AuditLogBroken).entry.what).toMatch(
      /leaves were dropped or the tail truncated/,
    );
  });
});
