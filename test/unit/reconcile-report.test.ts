// The compliance report's signature: Ed25519 over the RFC 8785 bytes of the report without it, checked
// by node:crypto as an independent verifier; any change to the report, or another key, fails it.
import { createPublicKey, verify } from "node:crypto";
import { describe, expect, it } from "vitest";
import { canonicalBytes } from "../../src/core/canonical-json.js";
import { publicKeyOf } from "../../src/core/checkpoint.js";
import { reconcile } from "../../src/core/reconcile.js";
import { reportBody, reportBytes, signReport, verifyReport } from "../../src/core/reconcile-report.js";

const SEED = new Uint8Array(32).map((_, i) => i + 1);
const OTHER = new Uint8Array(32).map((_, i) => 255 - i);

async function* none<T>(): AsyncGenerator<T> {}

async function sampleReport() {
  return reconcile({
    fromMs: Date.UTC(2026, 11, 7, 10),
    toMs: Date.UTC(2026, 11, 7, 11),
    now: Date.UTC(2026, 11, 7, 11, 5),
    sources: [
      {
        name: "ledger",
        async *jobs() {
          yield {
            job_id: "job_a",
            customer_id: "c",
            model: "flux/schnell",
            completed_at: Date.UTC(2026, 11, 7, 10, 30),
            gpu_ms: 1234,
            status: "complete",
          };
        },
      },
      { name: "audit", jobs: () => none() },
    ],
    admissions: none(),
    liveStates: async () => new Map(),
    tolerance: 0.001,
    lostAfterMs: 60_000,
    maxListed: 100,
    horizonMs: 86_400_000,
    keyId: "kid-1",
  });
}

describe("compliance report signature", () => {
  it("verifies with the signing key, also by node:crypto over the RFC 8785 bytes", async () => {
    const signed = await signReport(await sampleReport(), SEED);
    const publicKey = await publicKeyOf(SEED);
    expect(await verifyReport(signed, publicKey)).toBe(true);
    const spki = createPublicKey({
      key: { kty: "OKP", crv: "Ed25519", x: Buffer.from(publicKey).toString("base64url") },
      format: "jwk",
    });
    const ok = verify(
      null,
      canonicalBytes(reportBody(signed)),
      spki,
      Buffer.from(signed.signature, "base64url"),
    );
    expect(ok).toBe(true);
    // what is stored parses back to the same report
    expect(JSON.parse(new TextDecoder().decode(reportBytes(signed)))).toEqual(signed);
  });

  it("fails for a changed report, another key, or a malformed signature", async () => {
    const signed = await signReport(await sampleReport(), SEED);
    const publicKey = await publicKeyOf(SEED);
    const finding = signed.discrepancies[0]!.job_ids[0]!;
    expect(finding.job_id).toBe("job_a");
    const tampered = {
      ...signed,
      discrepancies: [{ ...signed.discrepancies[0]!, job_ids: [{ ...finding, job_id: "job_b" }] }],
    };
    expect(await verifyReport(tampered, publicKey)).toBe(false);
    expect(await verifyReport({ ...signed, flagged: false }, publicKey)).toBe(false);
    expect(await verifyReport(signed, await publicKeyOf(OTHER))).toBe(false);
    expect(await verifyReport({ ...signed, signature: "abc" }, publicKey)).toBe(false);
  });
});
