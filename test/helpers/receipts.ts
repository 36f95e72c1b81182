// Receipts as a customer checks them: an independent verifier of a few lines (the `canonicalize`
// package, node:crypto and RFC 9162's algorithm — none of the project's own verify code), and waiting
// for a job's receipt to be served.
import { createHash, createPublicKey, verify } from "node:crypto";
import canonicalize from "canonicalize";
import { until } from "./processes.js";

/** A receipt as GET /jobs/{id}/receipt serves it (API.md §3). */
export interface ReceiptDoc {
  record: Record<string, unknown> & { job_id: string; customer_id: string };
  leaf_index: number;
  leaf_hash: string;
  inclusion_proof: string[];
  checkpoint: CheckpointDoc;
}

export interface CheckpointDoc {
  log_id: string;
  tree_size: number;
  root_hash: string;
  timestamp: string;
  key_id: string;
  signature: string;
}

export interface JwksDoc {
  keys: { kid: string; x: string; kty: string; crv: string }[];
}

const sha256 = (...parts: Buffer[]) => createHash("sha256").update(Buffer.concat(parts)).digest();

/** Whether the checkpoint's Ed25519 signature verifies with the JWKS key of its key_id. */
export function checkpointSigned(cp: CheckpointDoc, jwks: JwksDoc): boolean {
  const { signature, ...body } = cp;
  const jwk = jwks.keys.find((k) => k.kid === body.key_id);
  if (jwk === undefined) return false;
  const key = createPublicKey({ key: { kty: "OKP", crv: "Ed25519", x: jwk.x }, format: "jwk" });
  return verify(null, Buffer.from(canonicalize(body)!), key, Buffer.from(signature, "base64url"));
}

/** The receipt checked as a customer would: leaf hash, inclusion proof (RFC 9162 §2.1.3.2), signature. */
export function independentlyVerified(r: ReceiptDoc, jwks: JwksDoc): boolean {
  const leaf = sha256(Buffer.from([0]), Buffer.from(canonicalize(r.record)!));
  if (leaf.toString("hex") !== r.leaf_hash || r.leaf_index >= r.checkpoint.tree_size) return false;
  let fn = r.leaf_index;
  let sn = r.checkpoint.tree_size - 1;
  let hash = leaf;
  for (const p of r.inclusion_proof.map((h) => Buffer.from(h, "hex"))) {
    if (sn === 0) return false;
    if (fn % 2 === 1 || fn === sn) {
      hash = sha256(Buffer.from([1]), p, hash);
      while (fn % 2 === 0 && fn !== 0) {
        fn = Math.floor(fn / 2);
        sn = Math.floor(sn / 2);
      }
    } else {
      hash = sha256(Buffer.from([1]), hash, p);
    }
    fn = Math.floor(fn / 2);
    sn = Math.floor(sn / 2);
  }
  return sn === 0 && hash.toString("hex") === r.checkpoint.root_hash && checkpointSigned(r.checkpoint, jwks);
}

/** GETs `path` until it answers 200 (404 and 429 are waited out); returns the body. */
export async function until200<T>(
  call: (path: string) => Promise<Response>,
  path: string,
  timeoutMs = 30_000,
  intervalMs = 50,
): Promise<T> {
  return until(
    `${path} answers 200`,
    async () => {
      const res = await call(path);
      if (res.status === 200) return (await res.json()) as T;
      await res.body?.cancel();
      if (res.status !== 404 && res.status !== 429) throw new Error(`${path}: ${res.status}`);
      return undefined;
    },
    timeoutMs,
    intervalMs,
  );
}
