// Minting HS256 tokens (`render-gateway token`, the dev token, tests and benches) and TTL parsing.
import { SignJWT } from "jose";
import type { JWTPayload } from "jose";
import type { Clock } from "../core/time.js";
import { DEFAULT_TIER, DEFAULT_TIERS } from "../core/tiers.js";

/** Options of {@link signToken}. */
export interface SignTokenOptions {
  readonly secret: Uint8Array;
  readonly customerId: string;
  /** Default `free`. */
  readonly tier?: string;
  /** The tier names `tier` must be one of; default the built-in tiers. */
  readonly tiers?: readonly string[];
  /** Adds `scope: "admin"`. */
  readonly admin?: boolean;
  /** Lifetime in seconds (see {@link parseTtl}). */
  readonly ttlS: number;
  readonly issuer?: string;
  readonly audience?: string;
  readonly clock: Clock;
}

const BUILT_IN_TIERS: readonly string[] = Object.keys(DEFAULT_TIERS);
/** The customer ids a token may name (API.md §1). */
export const CUSTOMER_ID_RE = /^[A-Za-z0-9_.:@-]{1,128}$/;
/** RFC 7518 §3.2: an HS256 key must be at least as long as the hash output. */
const MIN_SECRET_BYTES = 32;

/** @throws TypeError for a HS256 secret that is not a Uint8Array of at least 32 bytes. */
export function assertSecret(secret: Uint8Array): void {
  if (!(secret instanceof Uint8Array) || secret.byteLength < MIN_SECRET_BYTES) {
    throw new TypeError(`the HS256 secret must be a Uint8Array of at least ${MIN_SECRET_BYTES} bytes`);
  }
}

/**
 * A HS256 JWT for `customerId` (claims `sub` and `customer_id`, `tier`, `scope: "admin"` when admin,
 * `iat`, `exp` = now + `ttlS`, and `iss`/`aud` when given), as `render-gateway token` prints it.
 *
 * @throws TypeError for a short secret, a malformed customer id or a tier outside `tiers`; RangeError for a
 *   `ttlS` that is not a positive integer.
 */
export async function signToken(opts: SignTokenOptions): Promise<string> {
  assertSecret(opts.secret);
  if (typeof opts.customerId !== "string" || !CUSTOMER_ID_RE.test(opts.customerId)) {
    throw new TypeError("customerId must be 1-128 characters of [A-Za-z0-9_.:@-]");
  }
  const tier = opts.tier ?? DEFAULT_TIER;
  if (!(opts.tiers ?? BUILT_IN_TIERS).includes(tier)) throw new TypeError(`unknown tier ${String(tier)}`);
  if (!Number.isSafeInteger(opts.ttlS) || opts.ttlS <= 0)
    throw new RangeError("ttlS must be a positive integer");
  const nowS = Math.floor(opts.clock() / 1000);
  const claims: JWTPayload = { customer_id: opts.customerId, tier };
  if (opts.admin === true) claims["scope"] = "admin";
  const jwt = new SignJWT(claims)
    .setProtectedHeader({ alg: "HS256", typ: "JWT" })
    .setSubject(opts.customerId)
    .setIssuedAt(nowS)
    .setExpirationTime(nowS + opts.ttlS);
  if (opts.issuer !== undefined) jwt.setIssuer(opts.issuer);
  if (opts.audience !== undefined) jwt.setAudience(opts.audience);
  return jwt.sign(opts.secret);
}

const TTL_RE = /^([1-9][0-9]{0,9})([smhd]?)$/;
const UNIT_S: Readonly<Record<string, number>> = { "": 1, s: 1, m: 60, h: 3600, d: 86_400 };

/**
 * Seconds in a TTL written as `<n>[s|m|h|d]` (`"1h"`, `"30m"`, `"90s"`, `"7d"`, `"3600"` = seconds).
 * @throws RangeError for anything else (empty, zero, negative, fractions, unknown units, spaces).
 */
export function parseTtl(text: string): number {
  const match = typeof text === "string" ? TTL_RE.exec(text) : null;
  const unit = match?.[2] === undefined ? undefined : UNIT_S[match[2]];
  if (match?.[1] === undefined || unit === undefined) {
    throw new RangeError(
      `invalid TTL ${JSON.stringify(text)}: expected <n>[s|m|h|d], e.g. 1h, 30m, 90s, 7d, 3600`,
    );
  }
  return Number(match[1]) * unit;
}
