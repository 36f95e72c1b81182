// The audit log's files under DATA_DIR/audit (src/infra/audit-files.ts): modes, the log id, keys and
// their rotation (old checkpoints keep verifying), and .jsonl files that survive a torn last line.
import { randomBytes } from "node:crypto";
import {
  appendFileSync,
  chmodSync,
  mkdtempSync,
  readFileSync,
  rmSync,
  statSync,
  symlinkSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import {
  findPublicKey,
  signCheckpoint,
  verifyCheckpoint,
  type SignedCheckpoint,
} from "../../src/core/checkpoint.js";
import { JsonlLineError, currentSegments, openAuditFiles } from "../../src/infra/audit-files.js";

let dataDir: string;
beforeEach(() => {
  dataDir = mkdtempSync(join(tmpdir(), "rg-audit-files-"));
});
afterEach(() => {
  rmSync(dataDir, { recursive: true, force: true });
});

const modeOf = (path: string): number => statSync(path).mode & 0o777;
const digest = (n: number): string => `sha256-${n.toString(16).padStart(64, "0")}`;

async function checkpointWith(
  files: ReturnType<typeof openAuditFiles>,
  size: number,
): Promise<SignedCheckpoint> {
  const key = await files.signingKey();
  return signCheckpoint(
    {
      log_id: await files.logId(),
      tree_size: size,
      root_hash: "ab".repeat(32),
      timestamp: "2026-12-07T00:00:00.000Z",
      key_id: key.kid,
    },
    key.seed,
  );
}

describe("the log id", () => {
  it("is made once and kept", async () => {
    const id = await openAuditFiles(dataDir).logId();
    expect(id).toMatch(/^rg-[0-9a-f]{16}$/);
    expect(await openAuditFiles(dataDir).logId()).toBe(id);
    expect(modeOf(join(dataDir, "audit"))).toBe(0o700);
    expect(modeOf(join(dataDir, "audit", "log-id"))).toBe(0o600);
  });

  it("comes from AUDIT_LOG_ID when set (written down for the offline tools), and may not change", async () => {
    expect(await openAuditFiles(dataDir, { logId: "acme-prod-1" }).logId()).toBe("acme-prod-1");
    expect(readFileSync(join(dataDir, "audit", "log-id"), "utf8").trim()).toBe("acme-prod-1");
    expect(await openAuditFiles(dataDir).logId()).toBe("acme-prod-1");
    await expect(openAuditFiles(dataDir, { logId: "other" }).logId()).rejects.toThrow(/acme-prod-1/);
    expect(() => openAuditFiles(dataDir, { logId: "no spaces" })).toThrow(TypeError);
  });

  it("is the same for openers racing to make it", async () => {
    const ids = await Promise.all(Array.from({ length: 8 }, () => openAuditFiles(dataDir).logId()));
    expect(new Set(ids).size).toBe(1);
  });
});

describe("signing keys", () => {
  it("are made once, 0600 in a 0700 folder, and published in jwks.json", async () => {
    const key = await openAuditFiles(dataDir).signingKey();
    const keys = join(dataDir, "audit", "keys");
    expect(modeOf(keys)).toBe(0o700);
    expect(modeOf(join(keys, `${key.kid}.key`))).toBe(0o600);
    expect(readFileSync(join(keys, "current"), "utf8").trim()).toBe(key.kid);
    const again = await openAuditFiles(dataDir).signingKey();
    expect(again.kid).toBe(key.kid);
    expect(again.seed).toEqual(key.seed);
    const jwks = await openAuditFiles(dataDir).jwks();
    expect(jwks.keys.map((k) => k.kid)).toEqual([key.kid]);
    expect(findPublicKey(jwks, key.kid)).toEqual(key.publicKey);
  });

  it("is one key for openers racing to make the first", async () => {
    const keys = await Promise.all(Array.from({ length: 6 }, () => openAuditFiles(dataDir).signingKey()));
    expect(new Set(keys.map((k) => k.kid)).size).toBe(1);
    expect((await openAuditFiles(dataDir).jwks()).keys).toHaveLength(1);
  });

  it("refuses a key file open to group or others, or a symlink", async () => {
    const key = await openAuditFiles(dataDir).signingKey();
    const path = join(dataDir, "audit", "keys", `${key.kid}.key`);
    chmodSync(path, 0o644);
    await expect(openAuditFiles(dataDir).signingKey()).rejects.toThrow(/mode 0644/);
    chmodSync(path, 0o600);
    const elsewhere = join(dataDir, "elsewhere.key");
    writeFileSync(elsewhere, readFileSync(path), { mode: 0o600 });
    rmSync(path);
    symlinkSync(elsewhere, path);
    await expect(openAuditFiles(dataDir).signingKey()).rejects.toThrow(/symbolic link/);
  });

  it("rotate: the new key signs, the old public key stays, old checkpoints still verify", async () => {
    const files = openAuditFiles(dataDir);
    const old = await files.signingKey();
    const oldCp = await checkpointWith(files, 10);
    const kid = await files.rotateKey();
    expect(kid).not.toBe(old.kid);
    const reopened = openAuditFiles(dataDir);
    const now = await reopened.signingKey();
    expect(now.kid).toBe(kid);
    const newCp = await checkpointWith(reopened, 20);
    expect(newCp.key_id).toBe(kid);
    const jwks = await reopened.jwks();
    expect(jwks.keys.map((k) => k.kid)).toEqual([old.kid, kid]);
    for (const cp of [oldCp, newCp]) {
      const pub = findPublicKey(jwks, cp.key_id);
      expect(pub).toBeDefined();
      expect(await verifyCheckpoint(cp, pub as Uint8Array)).toBe(true);
    }
    // a second rotation keeps both earlier keys
    await reopened.rotateKey();
    expect((await reopened.jwks()).keys).toHaveLength(3);
  });

  it("take AUDIT_SIGNING_KEY instead, publishing its public key too; rotation is then refused", async () => {
    await openAuditFiles(dataDir).signingKey();
    const seed = randomBytes(32).toString("base64url");
    const files = openAuditFiles(dataDir, { signingKey: seed });
    const key = await files.signingKey();
    expect(Buffer.from(key.seed).toString("base64url")).toBe(seed);
    expect((await files.jwks()).keys.map((k) => k.kid)).toContain(key.kid);
    expect((await files.jwks()).keys).toHaveLength(2);
    await expect(files.rotateKey()).rejects.toThrow(/AUDIT_SIGNING_KEY/);
    expect(() => openAuditFiles(dataDir, { signingKey: "short" })).toThrow(TypeError);
  });
});

describe("index.jsonl and checkpoints.jsonl", () => {
  it("keep the last index line of each segment, 0600", async () => {
    const files = openAuditFiles(dataDir);
    await files.appendIndex([{ segment: 0, digest: digest(1), count: 3 }]);
    await files.appendIndex([
      { segment: 0, digest: digest(2), count: 4 },
      { segment: 1, digest: digest(3), count: 1 },
    ]);
    expect([...(await files.readIndex())]).toEqual([
      [0, { digest: digest(2), count: 4 }],
      [1, { digest: digest(3), count: 1 }],
    ]);
    expect((await files.readIndexLines()).entries).toHaveLength(3);
    expect(modeOf(join(dataDir, "audit", "index.jsonl"))).toBe(0o600);
    await expect(files.appendIndex([{ segment: -1, digest: digest(1), count: 1 }])).rejects.toThrow(
      TypeError,
    );
  });

  it("pass over a stale line: a segment's smaller count after a larger one", async () => {
    const files = openAuditFiles(dataDir);
    await files.appendIndex([
      { segment: 0, digest: digest(1), count: 2 },
      { segment: 0, digest: digest(2), count: 5 },
      { segment: 0, digest: digest(1), count: 2 },
    ]);
    expect(await files.readIndex()).toEqual(new Map([[0, { digest: digest(2), count: 5 }]]));
    expect(currentSegments((await files.readIndexLines()).entries).stale).toEqual([
      { line: 3, segment: 0, count: 2, kept: 5 },
    ]);
  });

  it("tolerate and report a torn last line, which the next append cuts off", async () => {
    const files = openAuditFiles(dataDir);
    await files.appendIndex([{ segment: 0, digest: digest(1), count: 2 }]);
    const path = join(dataDir, "audit", "index.jsonl");
    // a crash in the middle of an append: part of a line, no newline
    appendFileSync(path, '{"segment":0,"digest":"sha256-00');
    const read = await files.readIndexLines();
    expect(read.entries).toEqual([{ segment: 0, digest: digest(1), count: 2 }]);
    expect(read.torn).toEqual({ line: 2, bytes: 32 });
    await files.appendIndex([{ segment: 0, digest: digest(2), count: 3 }]);
    const after = await files.readIndexLines();
    expect(after.torn).toBeUndefined();
    expect(after.entries.map((e) => e.count)).toEqual([2, 3]);
    expect(readFileSync(path, "utf8").split("\n")).toHaveLength(3);
  });

  it("name a malformed complete line instead of guessing", async () => {
    const files = openAuditFiles(dataDir);
    await files.appendIndex([{ segment: 0, digest: digest(1), count: 2 }]);
    appendFileSync(join(dataDir, "audit", "index.jsonl"), '{"segment":1,"digest":"x","count":1}\n');
    const err = await files.readIndex().catch((e: unknown) => e);
    expect(err).toBeInstanceOf(JsonlLineError);
    expect((err as JsonlLineError).line).toBe(2);
    expect((err as JsonlLineError).message).toMatch(/index.jsonl line 2: digest/);
  });

  it("keep checkpoints in issue order, refuse malformed ones, and survive a torn last line", async () => {
    const files = openAuditFiles(dataDir);
    const a = await checkpointWith(files, 1);
    const b = await checkpointWith(files, 2);
    await files.appendCheckpoint(a);
    await files.appendCheckpoint(b);
    const path = join(dataDir, "audit", "checkpoints.jsonl");
    appendFileSync(path, JSON.stringify(a).slice(0, 40));
    const read = await files.readCheckpointLines();
    expect(read.entries).toEqual([a, b]);
    expect(read.torn?.line).toBe(3);
    expect(await files.readCheckpoints()).toEqual([a, b]);
    await expect(files.appendCheckpoint({ ...a, signature: "x" })).rejects.toThrow(/signature/);
    await files.appendCheckpoint(a);
    expect(await files.readCheckpoints()).toEqual([a, b, a]);
    expect(modeOf(path)).toBe(0o600);
  });

  it("read as empty before anything was written", async () => {
    const files = openAuditFiles(dataDir);
    expect((await files.readIndex()).size).toBe(0);
    expect(await files.readCheckpoints()).toEqual([]);
    expect((await files.jwks()).keys).toEqual([]);
  });
});
