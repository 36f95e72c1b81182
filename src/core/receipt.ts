// A job's receipt (API.md §3): its audit record, where the record sits in the log, the inclusion proof
// and a signed checkpoint — everything needed to check, with only the log's public key, that the
// record is in the log the operator signed. The CLI's `audit receipt` uses verifyReceipt; the README's
// customer snippet deliberately does not.
import type { AuditRecord } from "./audit-record.js";
import { parseAuditRecord } from "./audit-record.js";
import { canonicalBytes } from "./canonical-json.js";
import { checkpointProblem, findPublicKey, verifyCheckpoint, type SignedCheckpoint } from "./checkpoint.js";
import { fromHex, leafHash, toHex, verifyInclusion, type Hash } from "./merkle.js";

export interface Receipt {
  readonly record: AuditRecord;
  readonly leaf_index: number;
  /** SHA-256(0x00 ‖ canonicalBytes(record)), hex. */
  readonly leaf_hash: string;
  /** RFC 6962 audit path, nearest the leaf first, hex. */
  readonly inclusion_proof: readonly string[];
  readonly checkpoint: SignedCheckpoint;
}

/** A proof longer than this cannot belong to a tree of at most 2^63 leaves. */
const MAX_PROOF = 63;
const HEX64 = /^[0-9a-f]{64}$/;

/** The receipt of the record at `leafIndex`, from its inclusion proof in the checkpoint's tree. */
export function receiptOf(
  record: AuditRecord,
  leafIndex: number,
  proof: readonly Hash[],
  checkpoint: SignedCheckpoint,
): Receipt {
  return {
    record,
    leaf_index: leafIndex,
    leaf_hash: toHex(leafHash(canonicalBytes(record))),
    inclusion_proof: proof.map(toHex),
    checkpoint,
  };
}

export type ReceiptVerdict = { readonly ok: true } | { readonly ok: false; readonly why: string };

const fail = (why: string): ReceiptVerdict => ({ ok: false, why });

/**
 * Checks a receipt with only the public keys: the shape and bounds of every member, that `leaf_hash`
 * is the hash of the record's canonical bytes, that the inclusion proof leads from it to the
 * checkpoint's root, and that the checkpoint's signature verifies with the JWK whose kid is its
 * `key_id`. Never throws; `why` names the first thing that failed.
 */
export async function verifyReceipt(receipt: unknown, jwks: unknown): Promise<ReceiptVerdict> {
  if (typeof receipt !== "object" || receipt === null || Array.isArray(receipt)) return fail("not an object");
  const r = receipt as Record<string, unknown>;
  const rec = parseAuditRecord(r.record);
  if (!rec.ok) return fail(rec.why);
  const index = r.leaf_index;
  if (!Number.isSafeInteger(index) || (index as number) < 0)
    return fail("leaf_index must be a non-negative integer");
  if (typeof r.leaf_hash !== "string" || !HEX64.test(r.leaf_hash))
    return fail("leaf_hash must be 64 lowercase hex");
  const proof = r.inclusion_proof;
  if (!Array.isArray(proof) || proof.length > MAX_PROOF) {
    return fail(`inclusion_proof must be an array of at most ${MAX_PROOF} hashes`);
  }
  if (!proof.every((p) => typeof p === "string" && HEX64.test(p))) {
    return fail("inclusion_proof must hold 64-hex hashes");
  }
  const cpProblem = checkpointProblem(r.checkpoint);
  if (cpProblem !== undefined) return fail(`checkpoint: ${cpProblem}`);
  const cp = r.checkpoint as SignedCheckpoint;

  // Hash what the record says, not what leaf_hash claims: a receipt with a changed record must fail.
  const leaf = leafHash(canonicalBytes(r.record));
  if (toHex(leaf) !== r.leaf_hash) return fail("leaf_hash is not the hash of the record");
  if ((index as number) >= cp.tree_size) return fail("leaf_index is not inside the checkpoint's tree");
  const ok = verifyInclusion(
    leaf,
    index as number,
    cp.tree_size,
    (proof as string[]).map(fromHex),
    fromHex(cp.root_hash),
  );
  if (!ok) return fail("the inclusion proof does not lead to the checkpoint's root_hash");

  const key = findPublicKey(jwks, cp.key_id);
  if (key === undefined) return fail(`no Ed25519 key with kid ${JSON.stringify(cp.key_id)} in the key set`);
  if (!(await verifyCheckpoint(cp, key))) return fail("the checkpoint's signature does not verify");
  return { ok: true };
}
