// Tampering with the stored leaves of a 10,000-record audit log (segments of 256) is detected by the
// offline verify (src/infra/audit-log-reader.ts), which names the first bad entry: bytes flipped where
// a blob is stored, and an attacker who re-stores the changed segment under its new digest and rewrites
// index.jsonl to name it — flipping, dropping, reordering or inserting records.
import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { auditRecordBytes } from "../../src/core/audit-record.js";
import { verifyAuditLog, type AuditVerifyReport } from "../../src/infra/audit-log-reader.js";
import {
  buildAuditLog,
  indexLines,
  rewriteSegments,
  segmentsOf,
  syntheticRecord,
  type BuiltLog,
} from "../helpers/audit-log.js";

const N = 10_000;
const S = 256;
const dirs: string[] = [];
let log: BuiltLog;

beforeAll(async () => {
  const dir = mkdtempSync(join(tmpdir(), "rg-audit-tamper-"));
  dirs.push(dir);
  log = await buildAuditLog(dir, { count: N, segmentSize: S, checkpointEvery: 500 });
}, 120_000);
afterAll(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

/** A copy of the pristine log's DATA_DIR to tamper with. */
function copyOfLog(): string {
  const dir = mkdtempSync(join(tmpdir(), "rg-audit-tamper-"));
  dirs.push(dir);
  cpSync(log.dataDir, dir, { recursive: true });
  return dir;
}

/** A deterministic stream of numbers in [0, n), so a failure can be replayed. */
function sampler(seed: number): (n: number) => number {
  let x = seed;
  return (n) => {
    x = (Math.imul(x, 1_103_515_245) + 12_345) >>> 0;
    return x % n;
  };
}

/** The tree size of the checkpoint a bad entry names (`checkpoints.jsonl:<line>`). */
function checkpointSize(label: string | undefined): number {
  const line = Number(label?.split(":").at(-1));
  return log.checkpoints[line - 1]?.tree_size ?? Number.NaN;
}

/** The leaf a byte of the segment blob belongs to. */
function leafAt(segment: number, offset: number): number {
  let leaf = segment * S;
  let at = 0;
  for (;;) {
    at += (log.leaves[leaf] as Uint8Array).length + 1;
    if (offset < at) return leaf;
    leaf++;
  }
}

/** Expects a failed verify whose first bad entry is at `leaf` or, when the leaf still parses, at the range holding it. */
function expectCaught(report: AuditVerifyReport, leaf: number): void {
  expect(report.ok).toBe(false);
  const bad = report.bad;
  expect(bad).toBeDefined();
  if (bad?.checkpoint === undefined) {
    expect(bad?.leaf_index).toBe(leaf);
    expect(bad?.segment).toBe(Math.floor(leaf / S));
  } else {
    // a root that no longer matches: the range since the last matching checkpoint holds the leaf
    expect(bad.leaf_index).toBeLessThanOrEqual(leaf);
    expect(checkpointSize(bad.checkpoint)).toBeGreaterThan(leaf);
  }
}

// Each check verifies up to the whole log (about a second on a quiet machine): bounds for a loaded one.
describe("a 10,000-record audit log", { timeout: 180_000 }, () => {
  it("verifies as built", async () => {
    const report = await verifyAuditLog(log.dataDir);
    expect(report).toEqual({
      ok: true,
      verified: N,
      leaves: N,
      segments: Math.ceil(N / S),
      segmentSize: S,
      checkpoints: 20,
      notes: [],
    });
  });

  it("catches any byte flipped where a segment blob is stored, naming the segment", async () => {
    const dir = copyOfLog();
    const next = sampler(7);
    const lines = indexLines(dir);
    const last = new Map(lines.map((l) => [l.segment, l.digest]));
    for (let i = 0; i < 18; i++) {
      // spread over the log: early, middle and late segments
      const k = i < 6 ? next(4) : i < 12 ? next(last.size) : last.size - 1 - next(3);
      const hex = (last.get(k) as string).slice("sha256-".length);
      const path = join(dir, "cas", "sha256", hex.slice(0, 2), hex);
      const original = readFileSync(path);
      const flipped = Buffer.from(original);
      const at = next(flipped.length);
      flipped[at] = (flipped[at] as number) ^ (1 << next(8));
      writeFileSync(path, flipped);
      const report = await verifyAuditLog(dir);
      expect(report.ok, `byte ${at} of segment ${k}`).toBe(false);
      expect(report.bad?.segment).toBe(k);
      expect(report.bad?.what).toMatch(/do not hash/);
      writeFileSync(path, original);
    }
    expect((await verifyAuditLog(dir)).ok).toBe(true);
  });

  it("catches a flipped byte re-stored under its new digest, naming the leaf (or the checkpoint range holding it)", async () => {
    const next = sampler(11);
    const dir = copyOfLog();
    for (let i = 0; i < 16; i++) {
      const segments = segmentsOf(log.leaves, S);
      const k = next(segments.length);
      const blob = Buffer.concat((segments[k] as Uint8Array[]).flatMap((l) => [l, Buffer.from("\n")]));
      const at = next(blob.length);
      blob[at] = (blob[at] as number) ^ (1 << next(8));
      const leaf = leafAt(k, at);
      // split the changed blob back into its lines; a flipped newline splits or joins two of them
      const changed = blob
        .subarray(0, blob.length - 1)
        .toString("latin1")
        .split("\n")
        .map((l) => Buffer.from(l, "latin1"));
      segments[k] = changed;
      await rewriteSegments(dir, segments);
      const report = await verifyAuditLog(dir);
      expect(report.ok, `byte ${at} of segment ${k} (leaf ${leaf})`).toBe(false);
      if (changed.length === S || k === segments.length - 1) expectCaught(report, leaf);
      else expect(report.bad?.segment).toBe(k); // a sealed segment no longer holding S leaves
    }
  });

  it("catches a dropped record: the segment's count, or a re-packed log's roots and size", async () => {
    const dir = copyOfLog();
    const segments = segmentsOf(log.leaves, S);
    (segments[3] as Uint8Array[]).splice(17, 1);
    await rewriteSegments(dir, segments);
    let report = await verifyAuditLog(dir);
    expect(report.ok).toBe(false);
    expect(report.bad).toMatchObject({ segment: 3, leaf_index: 3 * S });
    expect(report.bad?.what).toMatch(/holds 255 leaves, not 256/);

    // re-packed so every sealed segment is full again
    await rewriteSegments(
      dir,
      segmentsOf([...log.leaves.slice(0, 3 * S + 17), ...log.leaves.slice(3 * S + 18)], S),
    );
    report = await verifyAuditLog(dir);
    expectCaught(report, 3 * S + 17);
    expect(report.bad?.checkpoint).toBeDefined();
  });

  it("catches reordered records, within a segment and across segments", async () => {
    for (const [i, j] of [
      [5 * S + 3, 5 * S + 4],
      [2 * S + 10, 20 * S + 10],
      [N - 2, N - 1],
    ] as const) {
      const dir = copyOfLog();
      const leaves = [...log.leaves];
      [leaves[i], leaves[j]] = [leaves[j] as Uint8Array, leaves[i] as Uint8Array];
      await rewriteSegments(dir, segmentsOf(leaves, S));
      const report = await verifyAuditLog(dir);
      expectCaught(report, i);
      expect(report.bad?.what).toMatch(/changed, dropped, inserted or reordered/);
    }
  });

  it("catches an inserted record: a new job, a copy of an existing one, or one past the last checkpoint", async () => {
    const forged = auditRecordBytes(syntheticRecord(123_456, "forged"));
    let dir = copyOfLog();
    await rewriteSegments(
      dir,
      segmentsOf([...log.leaves.slice(0, 4000), forged, ...log.leaves.slice(4000)], S),
    );
    expectCaught(await verifyAuditLog(dir), 4000);

    // the same job twice: named at its second appearance, even before any root is compared
    dir = copyOfLog();
    const twice = [...log.leaves.slice(0, 4001), log.leaves[4000] as Uint8Array, ...log.leaves.slice(4001)];
    await rewriteSegments(dir, segmentsOf(twice, S));
    const report = await verifyAuditLog(dir);
    expect(report.bad).toMatchObject({
      leaf_index: 4001,
      segment: Math.floor(4001 / S),
      job_id: log.records[4000]?.job_id,
    });
    expect(report.bad?.what).toMatch(/already in the log at leaf 4000/);

    // appended after the newest checkpoint: no checkpoint covers it
    dir = copyOfLog();
    await rewriteSegments(dir, segmentsOf([...log.leaves, forged], S));
    const tail = await verifyAuditLog(dir);
    expect(tail.ok).toBe(false);
    expect(tail.bad).toMatchObject({ leaf_index: N, segment: Math.floor(N / S) });
    expect(tail.bad?.what).toMatch(/not covered by any checkpoint/);
    expect(tail.verified).toBe(N);
  });
});
