// The history of a 10,000-record audit log: a truncated tail, a rewritten (forked) history and forged
// checkpoints are caught by the offline verify or by a consistency proof against a checkpoint someone
// kept; a torn last line from a crash is tolerated and reported; readAuditLog hands out only records a
// matching checkpoint covers.
import { appendFileSync, cpSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { AuditLogBroken } from "../../src/core/audit-log-check.js";
import { auditRecordBytes } from "../../src/core/audit-record.js";
import { publicJwk, publicKeyOf, signCheckpoint, type SignedCheckpoint } from "../../src/core/checkpoint.js";
import {
  TreeBuilder,
  consistencyProof,
  fromHex,
  leafHash,
  toHex,
  verifyConsistency,
} from "../../src/core/merkle.js";
import { openAuditFiles } from "../../src/infra/audit-files.js";
import { readAuditLog, verifyAuditLog } from "../../src/infra/audit-log-reader.js";
import {
  buildAuditLog,
  rewriteSegments,
  segmentsOf,
  subtreeHashesOf,
  syntheticRecord,
  type BuiltLog,
} from "../helpers/audit-log.js";

const N = 10_000;
const S = 256;
const dirs: string[] = [];
let log: BuiltLog;

const tempDir = (): string => {
  const dir = mkdtempSync(join(tmpdir(), "rg-audit-history-"));
  dirs.push(dir);
  return dir;
};
const copyOfLog = (): string => {
  const dir = tempDir();
  cpSync(log.dataDir, dir, { recursive: true });
  return dir;
};
const held = (cp: SignedCheckpoint, label = "kept.json:1") => [{ label, checkpoint: cp }];
const checkpointAt = (size: number): SignedCheckpoint =>
  log.checkpoints.find((c) => c.tree_size === size) as SignedCheckpoint;

beforeAll(async () => {
  log = await buildAuditLog(tempDir(), { count: N, segmentSize: S, checkpointEvery: 500 });
}, 120_000);
afterAll(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

describe("a truncated tail", { timeout: 120_000 }, () => {
  it("is caught when the newest checkpoint still names the lost leaves", async () => {
    const dir = copyOfLog();
    await rewriteSegments(dir, segmentsOf(log.leaves.slice(0, N - 100), S));
    const report = await verifyAuditLog(dir);
    expect(report.ok).toBe(false);
    expect(report.bad).toMatchObject({ checkpoint: "checkpoints.jsonl:20", leaf_index: N - 100 });
    expect(report.bad?.what).toMatch(/covers 10000 leaves but the log holds 9900/);
  });

  it("cut together with its checkpoints is caught by a checkpoint a customer kept", async () => {
    const dir = copyOfLog();
    await rewriteSegments(dir, segmentsOf(log.leaves.slice(0, 7000), S));
    const kept = readFileSync(join(dir, "audit", "checkpoints.jsonl"), "utf8")
      .split("\n")
      .slice(0, 14);
    writeFileSync(join(dir, "audit", "checkpoints.jsonl"), `${kept.join("\n")}\n`);
    // the operator's own files now agree with each other…
    expect((await verifyAuditLog(dir)).ok).toBe(true);
    // …but not with the checkpoint of 9,500 leaves a customer saved from GET /audit/checkpoint
    const report = await verifyAuditLog(dir, { checkpoints: held(checkpointAt(9_500)) });
    expect(report.ok).toBe(false);
    expect(report.bad).toMatchObject({ checkpoint: "kept.json:1", leaf_index: 7000 });
  });
});

describe("a forked history", { timeout: 120_000 }, () => {
  /** A log that agrees with the original up to `same` records, then holds other ones, signed with the same key. */
  async function fork(same: number): Promise<BuiltLog> {
    const dir = tempDir();
    mkdirSync(join(dir, "audit"), { recursive: true, mode: 0o700 });
    cpSync(join(log.dataDir, "audit", "keys"), join(dir, "audit", "keys"), { recursive: true });
    cpSync(join(log.dataDir, "audit", "log-id"), join(dir, "audit", "log-id"));
    const records = log.records.map((r, i) => (i < same ? r : syntheticRecord(i, "other")));
    return buildAuditLog(dir, { records, segmentSize: S, checkpointEvery: 500 });
  }

  it("verifies on its own but fails the consistency proof from an earlier checkpoint", async () => {
    const other = await fork(3_000);
    expect((await verifyAuditLog(other.dataDir)).ok).toBe(true);
    const earlier = checkpointAt(5_000);
    const newest = other.checkpoints.at(-1) as SignedCheckpoint;
    // the consistency proof the forked log's GET /audit/consistency?from=5000&to=10000 would give
    const proof = await consistencyProof(5_000, N, subtreeHashesOf(other.leaves, S));
    expect(verifyConsistency(5_000, N, fromHex(earlier.root_hash), fromHex(newest.root_hash), proof)).toBe(
      false,
    );
    // the same proof holds for the forked log's own checkpoint of that size: the proof is right, the history is not
    const own = other.checkpoints.find((c) => c.tree_size === 5_000) as SignedCheckpoint;
    expect(verifyConsistency(5_000, N, fromHex(own.root_hash), fromHex(newest.root_hash), proof)).toBe(true);
    // and the original log's proof from its own earlier checkpoint holds
    const honest = await consistencyProof(5_000, N, subtreeHashesOf(log.leaves, S));
    expect(
      verifyConsistency(5_000, N, fromHex(earlier.root_hash), fromHex(checkpointAt(N).root_hash), honest),
    ).toBe(true);
  });

  it("is named by verify when the earlier checkpoint is held against it", async () => {
    const other = await fork(3_000);
    const report = await verifyAuditLog(other.dataDir, { checkpoints: held(checkpointAt(3_500)) });
    expect(report.ok).toBe(false);
    expect(report.bad, report.bad?.what).toMatchObject({ checkpoint: "kept.json:1", leaf_index: 3_000 });
    // a checkpoint from before the fork still agrees
    expect((await verifyAuditLog(other.dataDir, { checkpoints: held(checkpointAt(3_000)) })).ok).toBe(true);
  });

  it("is caught when old checkpoints are left in checkpoints.jsonl", async () => {
    const dir = copyOfLog();
    const leaves = [...log.leaves];
    leaves[1_234] = auditRecordBytes(syntheticRecord(1_234, "x"));
    await rewriteSegments(dir, segmentsOf(leaves, S));
    const report = await verifyAuditLog(dir);
    expect(report.bad).toMatchObject({ checkpoint: "checkpoints.jsonl:3", leaf_index: 1_000 });
  });
});

describe("checkpoints and keys", { timeout: 120_000 }, () => {
  it("catches a checkpoint whose root was edited (its signature fails) or signed by an unknown key", async () => {
    let dir = copyOfLog();
    const path = join(dir, "audit", "checkpoints.jsonl");
    const lines = readFileSync(path, "utf8").split("\n");
    const cp = JSON.parse(lines[4] as string) as SignedCheckpoint;
    lines[4] = JSON.stringify({ ...cp, root_hash: checkpointAt(2_000).root_hash });
    writeFileSync(path, lines.join("\n"));
    expect((await verifyAuditLog(dir)).bad).toMatchObject({
      checkpoint: "checkpoints.jsonl:5",
      what: "the signature does not verify",
    });

    dir = copyOfLog();
    const seed = new Uint8Array(32).fill(9);
    const rogue = await signCheckpoint(
      { ...cp, key_id: (await publicJwk(await publicKeyOf(seed))).kid },
      seed,
    );
    appendFileSync(join(dir, "audit", "checkpoints.jsonl"), `${JSON.stringify(rogue)}\n`);
    expect((await verifyAuditLog(dir)).bad?.what).toMatch(/no published key has kid/);
  });

  it("with a trusted key set, catches a log re-signed with a key planted in jwks.json", async () => {
    const dir = copyOfLog();
    const leaves = [...log.leaves];
    leaves[42] = auditRecordBytes(syntheticRecord(42, "planted"));
    await rewriteSegments(dir, segmentsOf(leaves, S));
    // the attacker re-signs every checkpoint with a key of their own, published in the local jwks.json
    rmSync(join(dir, "audit", "checkpoints.jsonl"));
    rmSync(join(dir, "audit", "keys"), { recursive: true });
    const files = openAuditFiles(dir);
    const key = await files.signingKey();
    const tree = new TreeBuilder();
    for (const cp of log.checkpoints) {
      while (tree.size < cp.tree_size) tree.append(leafHash(leaves[tree.size] as Uint8Array));
      const { signature: _s, ...body } = cp;
      await files.appendCheckpoint(
        await signCheckpoint({ ...body, root_hash: toHex(tree.root()), key_id: key.kid }, key.seed),
      );
    }
    expect((await verifyAuditLog(dir)).ok).toBe(true);
    const trusted = { keys: [await publicJwk((await log.files.signingKey()).publicKey)] };
    const report = await verifyAuditLog(dir, { jwks: trusted });
    expect(report.ok).toBe(false);
    expect(report.bad?.what).toMatch(/no published key has kid/);
  });

  it("keeps old checkpoints verifiable across a key rotation", async () => {
    const dir = copyOfLog();
    const next = await buildAuditLog(dir, { records: [], segmentSize: S });
    await next.files.rotateKey();
    // more records, signed with the new key, in the same log
    const more = Array.from({ length: 300 }, (_, i) => syntheticRecord(N + i));
    const all = [...log.records, ...more];
    const tmp = tempDir();
    const full = await buildAuditLog(tmp, { records: all, segmentSize: S, checkpointAt: [N + 300] });
    await rewriteSegments(dir, segmentsOf(full.leaves, S));
    const key = await next.files.signingKey();
    const last = full.checkpoints.at(-1) as SignedCheckpoint;
    const { signature: _s, ...body } = last;
    await next.files.appendCheckpoint(
      await signCheckpoint({ ...body, log_id: await next.files.logId(), key_id: key.kid }, key.seed),
    );
    const report = await verifyAuditLog(dir);
    expect(report).toMatchObject({ ok: true, leaves: N + 300, checkpoints: 21 });
    expect((await next.files.jwks()).keys).toHaveLength(2);
  });
});

describe("crashes and readers", { timeout: 120_000 }, () => {
  it("tolerates and reports a torn last line of index.jsonl and checkpoints.jsonl", async () => {
    const dir = copyOfLog();
    appendFileSync(join(dir, "audit", "index.jsonl"), '{"segment":40,"dig');
    appendFileSync(join(dir, "audit", "checkpoints.jsonl"), '{"log_id":"rg-');
    const report = await verifyAuditLog(dir);
    expect(report.ok).toBe(true);
    expect(report.notes).toHaveLength(2);
    expect(report.notes[0]).toMatch(/index.jsonl line \d+: a torn last line \(18 bytes/);
  });

  it("passes over, and reports, a stale index line a writer that lost its lease left", async () => {
    const dir = copyOfLog();
    const lines = readFileSync(join(dir, "audit", "index.jsonl"), "utf8").split("\n");
    // the first (partial, 244 leaves) line of segment 1 again, after segment 1 was sealed
    appendFileSync(join(dir, "audit", "index.jsonl"), `${lines[1]}\n`);
    const report = await verifyAuditLog(dir);
    expect(report.ok).toBe(true);
    expect(report.notes).toEqual([
      expect.stringMatching(/segment 1 with \d+ leaves after a line with 256/) as string,
    ]);
  });

  it("names a malformed complete line instead of passing it over", async () => {
    const dir = copyOfLog();
    appendFileSync(join(dir, "audit", "index.jsonl"), "not json\n");
    const report = await verifyAuditLog(dir);
    expect(report.ok).toBe(false);
    expect(report.bad?.what).toMatch(/index.jsonl line \d+: not JSON/);
  });

  it("readAuditLog yields only records a matching checkpoint covers, then throws at the bad entry", async () => {
    const dir = copyOfLog();
    const leaves = [...log.leaves];
    leaves[1_700] = auditRecordBytes(syntheticRecord(1_700, "x"));
    await rewriteSegments(dir, segmentsOf(leaves, S));
    const seen: number[] = [];
    let error: unknown;
    try {
      for await (const { index, record } of readAuditLog(dir)) {
        expect(record.job_id).toBe(log.records[index]?.job_id);
        seen.push(index);
      }
    } catch (err) {
      error = err;
    }
    expect(seen).toEqual(Array.from({ length: 1_500 }, (_, i) => i));
    expect(error).toBeInstanceOf(AuditLogBroken);
    expect((error as AuditLogBroken).entry).toMatchObject({
      checkpoint: "checkpoints.jsonl:4",
      leaf_index: 1_500,
    });
  });

  it("reads an empty DATA_DIR as an empty, verified log", async () => {
    expect(await verifyAuditLog(tempDir())).toMatchObject({ ok: true, leaves: 0, checkpoints: 0 });
  });
});
