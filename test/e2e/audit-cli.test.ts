// `render-gateway audit verify|receipt|rotate-key` as real processes (API.md §5): exit 0 on a log or
// receipt that verifies, non-zero naming the first bad entry otherwise; no Redis anywhere.
import { execFile } from "node:child_process";
import { cpSync, readFileSync, symlinkSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { auditRecordBytes } from "../../src/core/audit-record.js";
import type { SignedCheckpoint } from "../../src/core/checkpoint.js";
import {
  buildAuditLog,
  receiptFrom,
  rewriteSegments,
  segmentsOf,
  syntheticRecord,
  type BuiltLog,
} from "../helpers/audit-log.js";
import { E2eHarness, PROJECT_ROOT } from "../helpers/processes.js";

let h: E2eHarness;
let log: BuiltLog;

beforeAll(async () => {
  h = new E2eHarness({ redis: "none" });
  log = await buildAuditLog(h.dataDir, { count: 600, segmentSize: 64, checkpointEvery: 100 });
}, 60_000);
afterAll(async () => {
  await h?.cleanup();
});

describe("render-gateway audit verify", { timeout: 120_000 }, () => {
  it("exits 0 on an intact log (DATA_DIR from the environment) and reports it, also as JSON", async () => {
    const [text, json] = await Promise.all([
      h.run(["audit", "verify"]),
      h.run(["audit", "verify", "--json"]),
    ]);
    expect(text.code, text.proc.describe()).toBe(0);
    expect(text.stdout).toBe("audit log verified: 600 leaves in 10 segments of 64, 6 checkpoints\n");
    expect(json.code, json.proc.describe()).toBe(0);
    expect(JSON.parse(json.stdout)).toMatchObject({ ok: true, verified: 600, leaves: 600, segments: 10 });
  });

  it("exits 1 naming the first bad entry of a tampered copy, and holds it to a kept checkpoint", async () => {
    const dir = h.tempDir();
    cpSync(log.dataDir, dir, { recursive: true });
    const leaves = [...log.leaves];
    leaves[250] = auditRecordBytes({ ...syntheticRecord(250), price_micro_usd: 1 });
    await rewriteSegments(dir, segmentsOf(leaves, 64));
    const kept = h.writeFile("kept.json", JSON.stringify(log.checkpoints[2]));
    const [broken, truncated] = await Promise.all([
      h.run(["audit", "verify", "--data-dir", dir]),
      (async () => {
        const cut = h.tempDir();
        cpSync(log.dataDir, cut, { recursive: true });
        await rewriteSegments(cut, segmentsOf(log.leaves.slice(0, 200), 64));
        const cps = readFileSync(join(cut, "audit", "checkpoints.jsonl"), "utf8")
          .split("\n")
          .slice(0, 2);
        writeFileSync(join(cut, "audit", "checkpoints.jsonl"), `${cps.join("\n")}\n`);
        return h.run(["audit", "verify", "--data-dir", cut, "--checkpoint", kept]);
      })(),
    ]);
    expect(broken.code, broken.proc.describe()).toBe(1);
    expect(broken.stdout).toBe("");
    expect(broken.stderr).toContain(
      "first bad entry: checkpoint checkpoints.jsonl:3, segment 3, leaf 200: its root_hash is not the root of the first 300 leaves",
    );
    expect(truncated.code, truncated.proc.describe()).toBe(1);
    expect(truncated.stderr).toContain(
      `checkpoint ${kept}:1, leaf 200: it covers 300 leaves but the log holds 200`,
    );
  });

  it("exits 2 for a missing subcommand", async () => {
    const r = await h.run(["audit"]);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain("audit verify");
  });
});

describe("render-gateway audit receipt and rotate-key", { timeout: 120_000 }, () => {
  it("verifies a receipt with DATA_DIR's keys or a given JWKS, and refuses a changed one", async () => {
    const receipt = await receiptFrom(log, 123, log.checkpoints.at(-1) as SignedCheckpoint);
    const good = h.writeFile("receipt.json", JSON.stringify(receipt));
    const changed = h.writeFile(
      "changed.json",
      JSON.stringify({ ...receipt, record: { ...receipt.record, gpu_ms: receipt.record.gpu_ms - 1 } }),
    );
    const jwks = h.writeFile("jwks.json", JSON.stringify(await log.files.jwks()));
    const [a, b, c] = await Promise.all([
      h.run(["audit", "receipt", good]),
      h.run(["audit", "receipt", good, "--jwks", jwks]),
      h.run(["audit", "receipt", changed, "--jwks", jwks]),
    ]);
    expect(a.code, a.proc.describe()).toBe(0);
    expect(a.stdout).toContain(
      `receipt verified: job ${receipt.record.job_id} is leaf 123 of log ${receipt.checkpoint.log_id}`,
    );
    expect(b.code, b.proc.describe()).toBe(0);
    expect(c.code).toBe(1);
    expect(c.stderr).toContain("receipt does NOT verify: leaf_hash is not the hash of the record");
  });

  it("rotate-key prints the new kid; the log still verifies and the old key stays published", async () => {
    const before = (await log.files.signingKey()).kid;
    const r = await h.run(["audit", "rotate-key"]);
    expect(r.code, r.proc.describe()).toBe(0);
    const kid = r.stdout.trim();
    expect(kid).toMatch(/^[A-Za-z0-9_-]{43}$/);
    expect(kid).not.toBe(before);
    expect((await log.files.signingKey()).kid).toBe(kid);
    expect((await log.files.jwks()).keys.map((k) => k.kid)).toEqual([before, kid]);
    const v = await h.run(["audit", "verify"]);
    expect(v.code, v.proc.describe()).toBe(0);
  });
});

describe("the README's receipt verifier", { timeout: 120_000 }, () => {
  it("run as a customer would (node, node:crypto, canonicalize), accepts a receipt and refuses altered ones", async () => {
    const readme = readFileSync(join(PROJECT_ROOT, "README.md"), "utf8");
    const section = readme.slice(readme.indexOf("### Verifying a receipt"));
    const code = /```js\n([\s\S]*?)```/.exec(section)?.[1];
    expect(code).toContain("verify-receipt.mjs");
    // a folder of the customer's: the script and the one package it installs
    const dir = h.tempDir();
    writeFileSync(join(dir, "verify-receipt.mjs"), code as string);
    symlinkSync(join(PROJECT_ROOT, "node_modules"), join(dir, "node_modules"));
    const keys = join(dir, "keys.json");
    writeFileSync(keys, JSON.stringify(await log.files.jwks()));
    const run = async (receipt: unknown): Promise<{ code: number; out: string }> => {
      const file = join(dir, "receipt.json");
      writeFileSync(file, JSON.stringify(receipt));
      try {
        const { stdout } = await promisify(execFile)(process.execPath, ["verify-receipt.mjs", file, keys], {
          cwd: dir,
          timeout: 20_000,
        });
        return { code: 0, out: stdout };
      } catch (err) {
        const e = err as { code?: number; stdout?: string };
        return { code: typeof e.code === "number" ? e.code : -1, out: e.stdout ?? "" };
      }
    };
    const cp = log.checkpoints.at(-1) as SignedCheckpoint;
    const receipt = await receiptFrom(log, 517, cp);
    expect(await run(receipt)).toEqual({ code: 0, out: "receipt verified\n" });
    const earlier = await receiptFrom(log, 0, log.checkpoints[0] as SignedCheckpoint);
    expect((await run(earlier)).code).toBe(0);
    for (const altered of [
      { ...receipt, record: { ...receipt.record, price_micro_usd: receipt.record.price_micro_usd + 1 } },
      { ...receipt, leaf_index: 516 },
      { ...receipt, inclusion_proof: receipt.inclusion_proof.slice(0, -1) },
      { ...receipt, checkpoint: { ...cp, tree_size: cp.tree_size + 1 } },
      { ...receipt, checkpoint: { ...cp, timestamp: "2030-01-01T00:00:00.000Z" } },
    ]) {
      expect(await run(altered)).toEqual({ code: 1, out: "receipt does NOT verify\n" });
    }
  });
});
