// Signed object URLs (API.md §3 Results) and per-purpose key derivation from one root secret.
import { createHmac, timingSafeEqual } from "node:crypto";

/** Digests that may appear in an object URL (API.md §3 Results). */
const SIGNABLE_DIGEST_RE = /^(?:sha256|blake3)-[0-9a-f]{64}$/;
/** Canonical decimal unix seconds: no sign, no leading zeros, no exponent, at most 16 digits. */
const EXP_RE = /^(?:0|[1-9][0-9]{0,15})$/;
/** An unpadded base64url HMAC-SHA256 is always 43 characters. */
const SIG_RE = /^[A-Za-z0-9_-]{43}$/;
const HOUR_S = 3600;

function assertKey(key: Uint8Array, what: string): void {
  if (!(key instanceof Uint8Array) || key.byteLength === 0) {
    throw new TypeError(`${what} must be a non-empty Uint8Array`);
  }
}

function assertUnixSeconds(value: number, name: string): void {
  if (!Number.isSafeInteger(value) || value < 0) {
    throw new RangeError(`${name} must be a non-negative integer number of seconds, got ${String(value)}`);
  }
}

function mac(key: Uint8Array, digest: string, exp: string): string {
  return createHmac("sha256", key).update(`${digest}\n${exp}`, "utf8").digest("base64url");
}

/**
 * Derives an independent 32-byte key for one purpose (`"jwt"`, `"object-url"`, …) from a root secret:
 * HMAC-SHA256(secret, `"render-gateway/" + purpose`). Keys for different purposes are unrelated, so a
 * signature made for one use can never be replayed as another.
 *
 * @throws TypeError when the secret is empty or the purpose is not a non-empty string.
 */
export function deriveKey(secret: Uint8Array, purpose: string): Uint8Array {
  assertKey(secret, "secret");
  if (typeof purpose !== "string" || purpose.length === 0) {
    throw new TypeError("purpose must be a non-empty string");
  }
  return new Uint8Array(createHmac("sha256", secret).update(`render-gateway/${purpose}`, "utf8").digest());
}

/**
 * The path (no origin) of a signed object URL:
 * `/objects/<digest>?exp=<exp>&sig=<base64url HMAC-SHA256(key, "<digest>\n<exp>")>`.
 * `expUnixS` = 0 means the URL never expires (`OUTPUT_URL_TTL_S=0`).
 *
 * @throws TypeError for an empty key or a digest that is not `sha256-<64 hex>` / `blake3-<64 hex>`;
 *   RangeError for an expiry that is not a non-negative integer.
 */
export function signObjectPath(key: Uint8Array, digest: string, expUnixS: number): string {
  assertKey(key, "key");
  if (typeof digest !== "string" || !SIGNABLE_DIGEST_RE.test(digest)) {
    throw new TypeError("digest must be sha256-<64 hex> or blake3-<64 hex>");
  }
  assertUnixSeconds(expUnixS, "expUnixS");
  const exp = String(expUnixS);
  return `/objects/${digest}?exp=${exp}&sig=${mac(key, digest, exp)}`;
}

/**
 * Signs absolute object URLs as the API hands them out (`GET /jobs/{id}`, webhook deliveries): the
 * gateway's public URL (read per call), then {@link signObjectPath} with the latest expiry issued now
 * ({@link outputExpiry}).
 */
export function objectUrlSigner(opts: {
  readonly publicUrl: () => string;
  readonly urlKey: Uint8Array;
  readonly outputUrlTtlS: number;
  readonly clock: () => number;
}): (digest: string) => string {
  return (digest) =>
    opts.publicUrl().replace(/\/$/, "") +
    signObjectPath(opts.urlKey, digest, outputExpiry(Math.floor(opts.clock() / 1000), opts.outputUrlTtlS));
}

/**
 * True when `sig` is the signature of `digest` and `exp` under `key`, and `exp` is allowed by the
 * output URL lifetime in force, `ttlS` (`OUTPUT_URL_TTL_S`):
 * - `ttlS` > 0: `nowS` ≤ `exp` ≤ {@link outputExpiry}(`nowS`, `ttlS`), the latest expiry the gateway
 *   issues now (so a signature made under a longer or unlimited lifetime, `exp=0` included, stops
 *   working once the lifetime is shortened);
 * - `ttlS` = 0 (URLs never expire): `exp` = 0, or any `exp` ≥ `nowS`.
 * Malformed, missing or non-canonical values (`exp=01`, `exp=1e9`, padded or wrong-length
 * signatures, unknown digest forms) are false, never an exception. The signature comparison is
 * constant-time.
 *
 * @throws TypeError only for an empty key or a `nowS` that is not a finite number, RangeError for a
 *   `ttlS` that is not a non-negative integer (wiring bugs, not request problems).
 */
export function verifyObjectSignature(
  key: Uint8Array,
  digest: string,
  exp: string | undefined,
  sig: string | undefined,
  nowS: number,
  ttlS: number,
): boolean {
  assertKey(key, "key");
  // A NaN "now" would make every expiry look valid.
  if (typeof nowS !== "number" || !Number.isFinite(nowS)) throw new TypeError("nowS must be a finite number");
  assertUnixSeconds(ttlS, "ttlS");
  if (typeof digest !== "string" || !SIGNABLE_DIGEST_RE.test(digest)) return false;
  if (typeof exp !== "string" || !EXP_RE.test(exp)) return false;
  if (typeof sig !== "string" || !SIG_RE.test(sig)) return false;
  const expS = Number(exp);
  if (!Number.isSafeInteger(expS)) return false;
  if (expS === 0) {
    if (ttlS !== 0) return false;
  } else if (expS < nowS || (ttlS !== 0 && expS > outputExpiry(Math.max(0, Math.floor(nowS)), ttlS))) {
    return false;
  }
  // Compare the canonical base64url text, not decoded bytes: the 43rd character carries two unused
  // bits, so comparing bytes would accept four spellings of one signature.
  const expected = Buffer.from(mac(key, digest, exp), "latin1");
  const given = Buffer.from(sig, "latin1");
  return expected.length === given.length && timingSafeEqual(expected, given);
}

/**
 * The expiry (unix seconds) to put in an output URL issued at `nowS` with a lifetime of `ttlS`:
 * `nowS + ttlS` rounded up to the next whole hour, so every URL for one object issued within the same
 * hour is byte-identical (cache-friendly) and no URL lives less than `ttlS`. `ttlS` = 0 → 0 (never
 * expires).
 *
 * @throws RangeError when either argument is not a non-negative integer.
 */
export function outputExpiry(nowS: number, ttlS: number): number {
  assertUnixSeconds(nowS, "nowS");
  assertUnixSeconds(ttlS, "ttlS");
  if (ttlS === 0) return 0;
  return Math.ceil((nowS + ttlS) / HOUR_S) * HOUR_S;
}
