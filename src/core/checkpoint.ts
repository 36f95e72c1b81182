// Signed checkpoints of the audit log (API.md §3 "Receipts"): Ed25519 (RFC 8032, @noble/ed25519) over
// the RFC 8785 bytes of `{log_id, tree_size, root_hash, timestamp, key_id}`, and the public keys as
// JWKs (RFC 8037 OKP) whose kid is the RFC 7638 thumbprint.
import * as ed from "@noble/ed25519";
import { calculateJwkThumbprint } from "jose";
import { canonicalBytes } from "./canonical-json.js";

/** What a checkpoint signs. */
export interface CheckpointBody {
  readonly log_id: string;
  readonly tree_size: number;
  /** MTH of the first `tree_size` leaves, lowercase hex. */
  readonly root_hash: string;
  /** RFC 3339 UTC with milliseconds. */
  readonly timestamp: string;
  /** The `kid` of the JWK that verifies it. */
  readonly key_id: string;
}

export interface SignedCheckpoint extends CheckpointBody {
  /** Ed25519 over canonicalBytes(body), base64url without padding. */
  readonly signature: string;
}

/** A public Ed25519 key as the JWKS serves it. */
export interface Jwk {
  readonly kty: "OKP";
  readonly crv: "Ed25519";
  /** The 32-byte public key, base64url. */
  readonly x: string;
  /** RFC 7638 thumbprint of {crv, kty, x}. */
  readonly kid: string;
  readonly alg: "EdDSA";
  readonly use: "sig";
}

const SEED_BYTES = 32;
const SIGNATURE_BYTES = 64;
/** Bounds of a checkpoint's strings, checked before any work on them. */
const MAX_ID_CHARS = 128;
const HEX64 = /^[0-9a-f]{64}$/;
const RFC3339_MS = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/;
const BASE64URL = /^[A-Za-z0-9_-]*$/;
// RFC 8032 verification, not the library's ZIP-215 default: what node:crypto (OpenSSL) accepts too.
const STRICT = { zip215: false } as const;

/** Unpadded base64url of bytes. */
export function toBase64Url(bytes: Uint8Array): string {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString("base64url");
}

/**
 * The bytes of an unpadded base64url string of exactly `length` bytes; undefined for anything else
 * (other alphabets, padding, a non-canonical last character).
 */
export function fromBase64Url(s: unknown, length: number): Uint8Array | undefined {
  if (typeof s !== "string" || s.length !== Math.ceil((length * 4) / 3) || !BASE64URL.test(s))
    return undefined;
  const bytes = Buffer.from(s, "base64url");
  if (bytes.length !== length || bytes.toString("base64url") !== s) return undefined;
  return new Uint8Array(bytes);
}

/**
 * What is wrong with `value` as a checkpoint body (or signed checkpoint, with `signed`), or undefined
 * when it has the right members, types and bounds. Members other than those listed are refused.
 */
export function checkpointProblem(value: unknown, signed = true): string | undefined {
  if (typeof value !== "object" || value === null || Array.isArray(value)) return "not an object";
  const v = value as Record<string, unknown>;
  const want = ["log_id", "tree_size", "root_hash", "timestamp", "key_id", ...(signed ? ["signature"] : [])];
  const keys = Object.keys(v);
  const extra = keys.find((k) => !want.includes(k));
  if (extra !== undefined) return `unexpected member ${JSON.stringify(extra.slice(0, MAX_ID_CHARS))}`;
  const missing = want.find((k) => !(k in v));
  if (missing !== undefined) return `missing ${missing}`;
  for (const k of ["log_id", "key_id"] as const) {
    const s = v[k];
    if (typeof s !== "string" || s.length === 0 || s.length > MAX_ID_CHARS) {
      return `${k} must be a string of 1..${MAX_ID_CHARS} characters`;
    }
  }
  if (!Number.isSafeInteger(v.tree_size) || (v.tree_size as number) < 0) {
    return "tree_size must be a non-negative integer";
  }
  if (typeof v.root_hash !== "string" || !HEX64.test(v.root_hash))
    return "root_hash must be 64 lowercase hex";
  if (typeof v.timestamp !== "string" || !RFC3339_MS.test(v.timestamp)) {
    return "timestamp must be RFC 3339 UTC with milliseconds";
  }
  if (signed && fromBase64Url(v.signature, SIGNATURE_BYTES) === undefined) {
    return "signature must be 64 bytes, base64url";
  }
  return undefined;
}

/** The body of a checkpoint: what its signature covers. */
export function checkpointBody(cp: CheckpointBody): CheckpointBody {
  return {
    log_id: cp.log_id,
    tree_size: cp.tree_size,
    root_hash: cp.root_hash,
    timestamp: cp.timestamp,
    key_id: cp.key_id,
  };
}

function assertSeed(seed: Uint8Array): void {
  if (!(seed instanceof Uint8Array) || seed.length !== SEED_BYTES) {
    throw new TypeError("an Ed25519 seed is 32 bytes");
  }
}

/** The Ed25519 public key (32 bytes) of a 32-byte seed (RFC 8032 private key). */
export async function publicKeyOf(seed: Uint8Array): Promise<Uint8Array> {
  assertSeed(seed);
  return ed.getPublicKeyAsync(seed);
}

/**
 * Signs the body with the seed.
 * @throws TypeError when the body is malformed (see {@link checkpointProblem}) or the seed is not 32 bytes.
 */
export async function signCheckpoint(body: CheckpointBody, seed: Uint8Array): Promise<SignedCheckpoint> {
  assertSeed(seed);
  const b = checkpointBody(body);
  const problem = checkpointProblem(b, false);
  if (problem !== undefined) throw new TypeError(`checkpoint: ${problem}`);
  const signature = await ed.signAsync(canonicalBytes(b), seed);
  return { ...b, signature: toBase64Url(signature) };
}

/**
 * Whether the checkpoint is well formed and its signature verifies with the 32-byte public key
 * (RFC 8032 rules). False, never a throw, for anything malformed.
 */
export async function verifyCheckpoint(cp: SignedCheckpoint, publicKey: Uint8Array): Promise<boolean> {
  if (!(publicKey instanceof Uint8Array) || publicKey.length !== 32) return false;
  if (checkpointProblem(cp) !== undefined) return false;
  const sig = fromBase64Url(cp.signature, SIGNATURE_BYTES);
  if (sig === undefined) return false;
  try {
    return await ed.verifyAsync(sig, canonicalBytes(checkpointBody(cp)), publicKey, STRICT);
  } catch {
    // a public key that is no curve point
    return false;
  }
}

/** The JWK of a 32-byte Ed25519 public key, with its RFC 7638 thumbprint as kid. */
export async function publicJwk(publicKey: Uint8Array): Promise<Jwk> {
  if (!(publicKey instanceof Uint8Array) || publicKey.length !== 32) {
    throw new TypeError("an Ed25519 public key is 32 bytes");
  }
  const x = toBase64Url(publicKey);
  const kid = await calculateJwkThumbprint({ kty: "OKP", crv: "Ed25519", x }, "sha256");
  return { kty: "OKP", crv: "Ed25519", x, kid, alg: "EdDSA", use: "sig" };
}

/**
 * The public key of the JWK in `jwks` whose kid is `kid`, when that JWK is an Ed25519 key (OKP,
 * Ed25519, 32-byte x); undefined otherwise. Anything that is not such a JWK set finds nothing.
 */
export function findPublicKey(jwks: unknown, kid: string): Uint8Array | undefined {
  if (typeof jwks !== "object" || jwks === null) return undefined;
  const keys = (jwks as { keys?: unknown }).keys;
  if (!Array.isArray(keys)) return undefined;
  for (const k of keys as unknown[]) {
    if (typeof k !== "object" || k === null) continue;
    const j = k as Record<string, unknown>;
    if (j.kid !== kid || j.kty !== "OKP" || j.crv !== "Ed25519") continue;
    const x = fromBase64Url(j.x, 32);
    if (x !== undefined) return x;
  }
  return undefined;
}
