// The opaque API key format `rk_<prefix>_<secret>` (API.md §1): making one, reading one, and its keyed hash.
import { createHmac, hash, randomBytes, timingSafeEqual } from "node:crypto";
import { randomAlnum } from "./ids.js";

/** What every API key starts with; a bearer token starting with it is never tried as a JWT. */
export const API_KEY_MARK = "rk_";
/** Characters of a key's prefix: [a-z0-9], so the prefix is unique in practice (~62 bits) and reads well. */
export const API_KEY_PREFIX_CHARS = 12;
/** Characters of a key's secret: [A-Za-z0-9], ~256 bits of randomness. */
export const API_KEY_SECRET_CHARS = 43;
/** Bytes of a key's keyed hash (HMAC-SHA256). */
export const API_KEY_HASH_BYTES = 32;
/** Shortest pepper (API_KEY_PEPPER, characters or bytes). */
export const MIN_PEPPER_BYTES = 32;

export const API_KEY_PREFIX_RE = /^[a-z0-9]{12}$/;
const API_KEY_RE = /^rk_([a-z0-9]{12})_([A-Za-z0-9]{43})$/;
const LOWER_ALNUM = "abcdefghijklmnopqrstuvwxyz0123456789";

/** A key split into its parts. */
export interface ApiKeyParts {
  /** Names the key (listing, revoking, logs); not a secret. */
  readonly prefix: string;
  readonly secret: string;
}

/** `length` characters of [a-z0-9] from random bytes, without modulo bias. */
function randomLowerAlnum(length: number, bytes: (n: number) => Uint8Array): string {
  let out = "";
  while (out.length < length) {
    for (const b of bytes(length * 2)) {
      if (b < 252) out += LOWER_ALNUM[b % 36];
      if (out.length === length) break;
    }
  }
  return out;
}

/**
 * A new key `rk_<12 of [a-z0-9]>_<43 of [A-Za-z0-9]>`: it matches RFC 6750's b64token, has no `_`
 * inside either part, and carries about 256 bits of secret. `bytes` is injectable for tests.
 */
export function generateApiKey(bytes: (n: number) => Uint8Array = randomBytes): {
  readonly key: string;
  readonly prefix: string;
} {
  const prefix = randomLowerAlnum(API_KEY_PREFIX_CHARS, bytes);
  const secret = randomAlnum(API_KEY_SECRET_CHARS, bytes);
  return { key: `${API_KEY_MARK}${prefix}_${secret}`, prefix };
}

/** Whether a bearer token is meant as an API key (starts with `rk_`), well-formed or not. */
export function isApiKeyToken(token: string): boolean {
  return token.startsWith(API_KEY_MARK);
}

/** The parts of a well-formed key, or undefined (anything else, including overlong input). */
export function parseApiKey(token: string): ApiKeyParts | undefined {
  if (typeof token !== "string" || token.length > 64) return undefined;
  const m = API_KEY_RE.exec(token);
  return m?.[1] === undefined || m[2] === undefined ? undefined : { prefix: m[1], secret: m[2] };
}

/**
 * The stored form of a key: HMAC-SHA256(pepper, whole key). The whole key, so a hash binds its secret
 * to its prefix; keyed, so a copy of Redis alone does not allow an offline guess even of a weak key.
 */
export function hashApiKey(pepper: Uint8Array, key: string): Buffer {
  return createHmac("sha256", pepper).update(key, "utf8").digest();
}

/**
 * SHA-256 of a key, for a process's memory only (never stored): a key verified once against its keyed
 * hash is recognised by this digest on later uses. One-shot `hash` to base64 then decoded: about a
 * fifth of an HMAC's cost (Node creates no Hash or Hmac object for it).
 */
export function digestApiKey(key: string): Buffer {
  return Buffer.from(hash("sha256", key, "base64"), "base64");
}

/** Constant-time equality of two hashes (false when either is not a full hash). */
export function sameHash(a: Uint8Array, b: Uint8Array): boolean {
  if (a.byteLength !== API_KEY_HASH_BYTES || b.byteLength !== API_KEY_HASH_BYTES) return false;
  return timingSafeEqual(a, b);
}
