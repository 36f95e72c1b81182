// The compliance report as stored and served (docs/decisions.md "Compliance"): signed with the audit
// log's key — Ed25519 (RFC 8032) over the RFC 8785 bytes of the report without its `signature`, the
// same scheme and key id (`key_id`, the JWKS at /.well-known/render-gateway/keys) as the log's
// checkpoints — and its stored bytes, the RFC 8785 bytes of the signed report.
import * as ed from "@noble/ed25519";
import { canonicalBytes } from "./canonical-json.js";
import { fromBase64Url, toBase64Url } from "./checkpoint.js";
import type { ReconcileReport, ReportSummary, SignedReport } from "./reconcile-types.js";

const SIGNATURE_BYTES = 64;
// RFC 8032 verification (as the checkpoints are verified), not the library's ZIP-215 default.
const STRICT = { zip215: false } as const;

/** The report without its signature: what the signature covers. */
export function reportBody(report: SignedReport | ReconcileReport): ReconcileReport {
  const { signature: _signature, ...body } = report as SignedReport;
  return body;
}

/**
 * Signs the report with the audit key's 32-byte seed; `report.key_id` must name that key.
 * @throws TypeError when the seed is not 32 bytes; CanonicalJsonError for a value JSON cannot carry.
 */
export async function signReport(report: ReconcileReport, seed: Uint8Array): Promise<SignedReport> {
  if (!(seed instanceof Uint8Array) || seed.length !== 32) throw new TypeError("an Ed25519 seed is 32 bytes");
  const body = reportBody(report);
  const signature = await ed.signAsync(canonicalBytes(body), seed);
  return { ...body, signature: toBase64Url(signature) };
}

/** Whether the signature verifies with the 32-byte public key; false, never a throw, when malformed. */
export async function verifyReport(report: SignedReport, publicKey: Uint8Array): Promise<boolean> {
  if (!(publicKey instanceof Uint8Array) || publicKey.length !== 32) return false;
  const sig = fromBase64Url(report.signature, SIGNATURE_BYTES);
  if (sig === undefined) return false;
  try {
    return await ed.verifyAsync(sig, canonicalBytes(reportBody(report)), publicKey, STRICT);
  } catch {
    return false;
  }
}

/** The bytes stored in the CAS (and served): RFC 8785 of the signed report. */
export function reportBytes(report: SignedReport): Uint8Array {
  return canonicalBytes(report);
}

/** What the list of reports shows of one, stored under `digest`. */
export function summaryOf(report: ReconcileReport, digest: string): ReportSummary {
  return {
    digest,
    from: report.from,
    to: report.to,
    generated_at: report.generated_at,
    flagged: report.flagged,
    max_discrepancy: report.max_discrepancy,
    mismatched_jobs: report.mismatched_jobs,
    lost: report.lost.count,
  };
}
