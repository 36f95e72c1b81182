// Audit records and receipts (src/core/audit-record.ts, src/core/receipt.ts): the record of a finished
// job holds the ledger's numbers and digests, never the prompt; its receipt verifies with the project's
// verifyReceipt AND with an independent few-line verifier written below with node:crypto and the
// `canonicalize` package only — the same snippet the README gives customers.
import { createHash, createPublicKey, verify } from "node:crypto";
import canonicalize from "canonicalize";
import { describe, expect, it } from "vitest";
import {
  auditRecordBytes,
  auditRecordOf,
  inputDigestOf,
  type AuditRecord,
} from "../../src/core/audit-record.js";
import { ledgerEntryOf } from "../../src/core/billing.js";
import { publicJwk, publicKeyOf, signCheckpoint } from "../../src/core/checkpoint.js";
import type { OutboxEvent } from "../../src/core/outbox.js";
import { receiptOf, verifyReceipt, type Receipt } from "../../src/core/receipt.js";
import { DEFAULT_TIERS } from "../../src/core/tiers.js";
import { leafHash, inclusionProof, rootOf, toHex } from "../../src/core/merkle.js";
import { subtreeHashesOf, syntheticRecord } from "../helpers/audit-log.js";

// ---- the independent verifier: README "Verifying a receipt", as a function (the README's block itself
// runs as a process in test/e2e/audit-cli.test.ts) ----
const sha256 = (...parts: Buffer[]): Buffer => createHash("sha256").update(Buffer.concat(parts)).digest();
function independentVerify(receipt: any, jwks: any): boolean {
  const { record, leaf_index, inclusion_proof, checkpoint } = receipt;
  let hash = sha256(Buffer.from([0]), Buffer.from(canonicalize(record)!)); // the leaf (RFC 6962)
  let [fn, sn] = [leaf_index, checkpoint.tree_size - 1]; // up the tree (RFC 9162 §2.1.3.2)
  for (const p of inclusion_proof.map((h: string) => Buffer.from(h, "hex"))) {
    if (fn % 2 === 1 || fn === sn) {
      hash = sha256(Buffer.from([1]), p, hash);
      while (fn % 2 === 0 && fn !== 0) [fn, sn] = [fn / 2, Math.floor(sn / 2)];
    } else hash = sha256(Buffer.from([1]), hash, p);
    [fn, sn] = [Math.floor(fn / 2), Math.floor(sn / 2)];
  }
  const { signature, ...body } = checkpoint; // Ed25519 over the checkpoint's RFC 8785 bytes
  const jwk = jwks.keys.find((k: any) => k.kid === checkpoint.key_id);
  return (
    leaf_index < checkpoint.tree_size &&
    sn === 0 &&
    hash.toString("hex") === checkpoint.root_hash &&
    verify(
      null,
      Buffer.from(canonicalize(body)!),
      createPublicKey({ key: jwk, format: "jwk" }),
      Buffer.from(signature, "base64url"),
    )
  );
}
// ---- end of the independent verifier ----

const PROMPT = "a red fox in the snow, secret prompt text";
const OUT = `sha256-${"ab".repeat(32)}`;
const completeEvent: OutboxEvent = {
  jobId: "job_abc",
  event: "complete",
  seq: 4,
  at: 1_765_000_005_000,
  data: { output: OUT, outputs: [OUT], gpu_ms: 2_345 },
  record: {
    id: "job_abc",
    cust: "c1",
    tier: "pro",
    status: "complete",
    prio: "normal",
    mod: "image",
    fam: "flux",
    mdl: "schnell",
    task: "t2i",
    fmt: "square",
    req: JSON.stringify({ prompt: PROMPT, steps: 4, seed: 7 }),
    created: "1765000000000",
    started: "1765000001000",
    completed: "1765000004000",
    attempt: "2",
    backend: "sim-1",
    output: OUT,
    outputs: JSON.stringify([OUT]),
    gpu_ms: "2345",
  },
};

describe("auditRecordOf", () => {
  it("holds the API.md fields, the ledger's GPU time and price, and digests — never the prompt", () => {
    const r = auditRecordOf(completeEvent, DEFAULT_TIERS) as AuditRecord;
    const ledger = ledgerEntryOf(completeEvent, DEFAULT_TIERS);
    expect(r).toEqual({
      job_id: "job_abc",
      customer_id: "c1",
      modality: "image",
      family: "flux",
      model: "schnell",
      task: "t2i",
      backend: "sim-1",
      status: "complete",
      attempts: 2,
      created_at: "2025-12-06T05:46:40.000Z",
      started_at: "2025-12-06T05:46:41.000Z",
      completed_at: "2025-12-06T05:46:44.000Z",
      gpu_ms: 2_345,
      price_micro_usd: ledger?.cost_micro_usd,
      input_digest: `sha256-${createHash("sha256")
        .update('{"prompt":"' + PROMPT + '","seed":7,"steps":4}')
        .digest("hex")}`,
      output_digests: [OUT],
    });
    expect(r.price_micro_usd).toBe(938); // 2.345 s at pro's 400 µUSD per GPU-second
    expect(new TextDecoder().decode(auditRecordBytes(r))).not.toContain("fox");
  });

  it("is made only for terminal events, with null for a job that never started", () => {
    expect(auditRecordOf({ ...completeEvent, event: "progress" }, DEFAULT_TIERS)).toBeUndefined();
    const { started: _s, backend: _b, ...rest } = completeEvent.record;
    const cancelled = auditRecordOf(
      {
        ...completeEvent,
        event: "cancelled",
        data: {},
        record: { ...rest, status: "cancelled", attempt: "0" },
      },
      DEFAULT_TIERS,
    ) as AuditRecord;
    expect(cancelled).toMatchObject({
      status: "cancelled",
      started_at: null,
      backend: null,
      gpu_ms: 0,
      price_micro_usd: 0,
      output_digests: [],
    });
  });

  it("digests the stored request by its canonical bytes, whatever its key order", () => {
    expect(inputDigestOf('{"b":1,"a":[1.0,"x"]}')).toBe(inputDigestOf('{"a":[1,"x"],"b":1}'));
    expect(inputDigestOf(undefined)).toBe(inputDigestOf("{}"));
    expect(inputDigestOf("not json")).toMatch(/^sha256-[0-9a-f]{64}$/);
  });
});

async function receiptsOf(count: number, S: number, seed: Uint8Array) {
  const records = Array.from({ length: count }, (_, i) => syntheticRecord(i));
  const leaves = records.map(auditRecordBytes);
  const publicKey = await publicKeyOf(seed);
  const jwk = await publicJwk(publicKey);
  const checkpoint = async (size: number) =>
    signCheckpoint(
      {
        log_id: "rg-test",
        tree_size: size,
        root_hash: toHex(rootOf(leaves.slice(0, size).map(leafHash))),
        timestamp: "2026-12-07T10:00:00.000Z",
        key_id: jwk.kid,
      },
      seed,
    );
  const receipt = async (index: number, size: number): Promise<Receipt> =>
    receiptOf(
      records[index] as AuditRecord,
      index,
      await inclusionProof(index, size, subtreeHashesOf(leaves, S, size)),
      await checkpoint(size),
    );
  return { receipt, jwks: { keys: [jwk] } };
}

describe("receipts", () => {
  it("verify with the independent verifier and with verifyReceipt, for every leaf of several tree sizes", async () => {
    const { receipt, jwks } = await receiptsOf(150, 16, new Uint8Array(32).fill(5));
    for (const size of [1, 16, 17, 100, 150]) {
      for (let i = 0; i < size; i += size > 20 ? 7 : 1) {
        const r = JSON.parse(JSON.stringify(await receipt(i, size))) as Receipt; // as it travels
        expect(independentVerify(r, jwks), `${i} of ${size}`).toBe(true);
        expect(await verifyReceipt(r, jwks)).toEqual({ ok: true });
      }
    }
  });

  it("fail, on both verifiers, when anything in them changes", async () => {
    const { receipt, jwks } = await receiptsOf(150, 16, new Uint8Array(32).fill(6));
    const good = await receipt(37, 150);
    const flipHex = (h: string) => `${h[0] === "0" ? "1" : "0"}${h.slice(1)}`;
    const other = await receiptsOf(1, 16, new Uint8Array(32).fill(7));
    const bad: [string, Receipt, unknown][] = [
      [
        "a changed price",
        { ...good, record: { ...good.record, price_micro_usd: good.record.price_micro_usd + 1 } },
        jwks,
      ],
      ["another index", { ...good, leaf_index: 36 }, jwks],
      [
        "a flipped proof hash",
        {
          ...good,
          inclusion_proof: [flipHex(good.inclusion_proof[0] as string), ...good.inclusion_proof.slice(1)],
        },
        jwks,
      ],
      ["a shorter proof", { ...good, inclusion_proof: good.inclusion_proof.slice(1) }, jwks],
      ["another tree size", { ...good, checkpoint: { ...good.checkpoint, tree_size: 149 } }, jwks],
      [
        "another root",
        { ...good, checkpoint: { ...good.checkpoint, root_hash: flipHex(good.checkpoint.root_hash) } },
        jwks,
      ],
      [
        "a changed timestamp",
        { ...good, checkpoint: { ...good.checkpoint, timestamp: "2026-12-07T10:00:00.001Z" } },
        jwks,
      ],
      ["another key set", good, { keys: [{ ...other.jwks.keys[0], kid: good.checkpoint.key_id }] }],
    ];
    for (const [what, r, set] of bad) {
      expect(independentVerify(r, set), what).toBe(false);
      expect((await verifyReceipt(r, set)).ok, what).toBe(false);
    }
    // leaf_hash is a convenience the independent verifier recomputes; verifyReceipt holds it to the record
    expect((await verifyReceipt({ ...good, leaf_hash: flipHex(good.leaf_hash) }, jwks)).ok).toBe(false);
  });

  it("refuse malformed receipts with a reason instead of throwing", async () => {
    const { receipt, jwks } = await receiptsOf(4, 2, new Uint8Array(32).fill(8));
    const good = await receipt(1, 4);
    for (const [value, why] of [
      [null, /not an object/],
      [{ ...good, record: { ...good.record, prompt: "x" } }, /record/],
      [{ ...good, leaf_index: -1 }, /leaf_index/],
      [{ ...good, inclusion_proof: "x" }, /inclusion_proof/],
      [{ ...good, inclusion_proof: Array.from({ length: 64 }, () => good.leaf_hash) }, /at most 63/],
      [{ ...good, checkpoint: { ...good.checkpoint, signature: 1 } }, /checkpoint: signature/],
      [{ ...good, leaf_index: 4 }, /not inside/],
      [good, /no Ed25519 key/],
    ] as const) {
      const verdict = await verifyReceipt(value, value === good ? { keys: [] } : jwks);
      expect(verdict.ok).toBe(false);
      expect(verdict.ok ? "" : verdict.why).toMatch(why);
    }
  });
});
