// Bearer-token authentication (API.md §1): jose-verified JWTs, cached per token until their `exp`.
import { SignJWT, jwtVerify } from "jose";
import type { JWTPayload, JWTVerifyOptions } from "jose";
import { AppError } from "../core/errors.js";
import { createLru } from "../core/lru.js";
import type { Clock } from "../core/time.js";
import { DEFAULT_TIER, DEFAULT_TIERS } from "../core/tiers.js";

export type { TierName } from "../core/tiers.js";

/** Who is calling, as established by {@link Authenticator.authenticate}. Frozen; safe to share. */
export interface Principal {
  readonly customerId: string;
  /** A tier of the tiers table (TIERS_FILE or the built-in one). */
  readonly tier: string;
  readonly admin: boolean;
  /** When the credential stops being valid, in milliseconds since the epoch (the JWT `exp`). */
  readonly expiresAt: number;
  /** The API key's prefix when the credential is an API key (for logs; never the key itself). */
  readonly keyPrefix?: string;
}

/** Options of {@link createAuthenticator}. */
export interface AuthenticatorOptions {
  /** The HS256 key (`JWT_SECRET`, or the JWT key derived from the dev secret); at least 32 bytes. */
  readonly secret: Uint8Array;
  /** Required `iss` when set (`JWT_ISSUER`). */
  readonly issuer?: string;
  /** Required `aud` when set (`JWT_AUDIENCE`). */
  readonly audience?: string;
  /** Leeway for `exp`/`nbf`, seconds; default 30. */
  readonly clockToleranceS?: number;
  /**
   * Longest lifetime a token may have left, seconds (`JWT_MAX_TTL_S`): a token whose `exp` lies more
   * than this (plus the tolerance) after now is refused, however valid its signature.
   */
  readonly maxTtlS: number;
  /** Most verified tokens remembered; default 10 000. 0 disables the cache. */
  readonly cacheSize?: number;
  /**
   * The tier names a token may claim: the keys of the tiers table (TIERS_FILE or the built-in one).
   * A token naming another tier is refused (401).
   */
  readonly tiers: readonly string[];
  readonly clock: Clock;
}

/** Counters for tests and metrics. */
export interface AuthenticatorStats {
  /** Tokens that went through jose (cache misses, including failures). */
  readonly verifications: number;
  /** Requests answered from the cache. */
  readonly cacheHits: number;
  /** Tokens in the cache now. */
  readonly cached: number;
}

/** What {@link createAuthenticator} returns. */
export interface Authenticator {
  /**
   * The principal of an `Authorization` header value (`Bearer <token>`, scheme case-insensitive).
   * @throws AppError `unauthorized` (401, with `WWW-Authenticate`) when the header is missing or
   *   malformed or the token fails any check; the message is generic and never contains the token.
   */
  authenticate(authorizationHeader: string | undefined): Promise<Principal>;
  /** The principal of a token verified before and still valid, without waiting; else undefined. */
  peek(authorizationHeader: string | undefined): Principal | undefined;
  /** Forgets every cached verification (key rotation, revocation). */
  clear(): void;
  stats(): AuthenticatorStats;
}

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
const CUSTOMER_ID_RE = /^[A-Za-z0-9_.:@-]{1,128}$/;
/** RFC 6750 §2.1: `Bearer 1*SP b64token`. */
const BEARER_RE = /^Bearer +([A-Za-z0-9\-._~+/]+=*) *$/i;
/** Far above any real JWT; keeps a hostile header from costing a large hash. */
const MAX_HEADER_CHARS = 8192;
/** RFC 7518 §3.2: an HS256 key must be at least as long as the hash output. */
const MIN_SECRET_BYTES = 32;
/**
 * The verification algorithms accepted. Only HS256 with a shared secret in this version; public keys
 * (EdDSA/RS256/ES256) and JWKS plug in by passing a `JWTVerifyGetKey` from createLocalJWKSet /
 * createRemoteJWKSet as the key below and extending this allow-list per key type.
 */
const ALGORITHMS = ["HS256"];
const REALM = 'Bearer realm="render-gateway"';

function assertSecret(secret: Uint8Array): void {
  if (!(secret instanceof Uint8Array) || secret.byteLength < MIN_SECRET_BYTES) {
    throw new TypeError(`the HS256 secret must be a Uint8Array of at least ${MIN_SECRET_BYTES} bytes`);
  }
}

/** Why a credential was refused: kept as the error's cause for the log, never sent to the client. */
function refused(reason: string, cause?: unknown): AppError {
  return new AppError("unauthorized", "Invalid or expired token", {
    headers: { "WWW-Authenticate": `${REALM}, error="invalid_token"` },
    cause: new Error(reason, cause === undefined ? undefined : { cause }),
  });
}

function joseCode(err: unknown): string {
  const code = (err as { code?: unknown } | null)?.code;
  return typeof code === "string" ? code : "ERR_JWT_VERIFY";
}

/** customer_id, else sub, else user_id: the first one present decides, and it must be well-formed. */
function customerIdOf(payload: JWTPayload): string {
  for (const claim of ["customer_id", "sub", "user_id"] as const) {
    const value = payload[claim];
    if (value === undefined) continue;
    if (typeof value === "string" && CUSTOMER_ID_RE.test(value)) return value;
    throw refused(`malformed ${claim} claim`);
  }
  throw refused("no customer_id, sub or user_id claim");
}

function tierOf(payload: JWTPayload, tiers: ReadonlySet<string>): string {
  const value = payload["tier"];
  if (value === undefined) return DEFAULT_TIER;
  if (typeof value === "string" && tiers.has(value)) return value;
  throw refused("unknown tier claim");
}

function isAdmin(payload: JWTPayload): boolean {
  const scope = payload["scope"];
  if (scope === undefined) return false;
  if (typeof scope === "string") return scope.split(" ").includes("admin");
  if (Array.isArray(scope) && scope.every((s) => typeof s === "string")) return scope.includes("admin");
  throw refused("malformed scope claim");
}

/**
 * Makes the request authenticator of API.md §1. Tokens are verified with jose (HS256 allow-list, `exp`
 * required, `nbf` honoured, `iss`/`aud` when configured, `clockToleranceS` leeway), and `exp` may lie
 * at most `maxTtlS` (plus the leeway) ahead, so no token outlives the configured lifetime. Successful
 * verifications are remembered in a bounded LRU keyed by the token, and a cached entry is
 * served only while the injected clock is before the token's `exp`, so a hot token costs a map
 * lookup instead of a jose verify. Concurrent first uses of one token share a single verify.
 *
 * @throws TypeError when the secret is shorter than 32 bytes or `tiers` is not a non-empty list of
 *   names; RangeError when a numeric option is out of range.
 */
export function createAuthenticator(opts: AuthenticatorOptions): Authenticator {
  assertSecret(opts.secret);
  if (
    !Array.isArray(opts.tiers) ||
    opts.tiers.length === 0 ||
    !opts.tiers.every((t) => typeof t === "string" && t !== "")
  ) {
    throw new TypeError("tiers must be a non-empty list of tier names");
  }
  const tiers: ReadonlySet<string> = new Set(opts.tiers);
  const clockToleranceS = opts.clockToleranceS ?? 30;
  const cacheSize = opts.cacheSize ?? 10_000;
  if (!Number.isFinite(clockToleranceS) || clockToleranceS < 0) {
    throw new RangeError("clockToleranceS must be a non-negative number");
  }
  if (!Number.isSafeInteger(cacheSize) || cacheSize < 0)
    throw new RangeError("cacheSize must be a non-negative integer");
  const { clock, maxTtlS } = opts;
  if (!Number.isSafeInteger(maxTtlS) || maxTtlS <= 0)
    throw new RangeError("maxTtlS must be a positive integer");
  // Copied so a caller reusing its buffer cannot change the key behind the cache's back.
  const key = new Uint8Array(opts.secret);
  const baseOptions: JWTVerifyOptions = {
    algorithms: ALGORITHMS,
    requiredClaims: ["exp"],
    clockTolerance: clockToleranceS,
    ...(opts.issuer === undefined ? {} : { issuer: opts.issuer }),
    ...(opts.audience === undefined ? {} : { audience: opts.audience }),
  };

  const cache = createLru<string, Principal>(cacheSize);
  const inflight = new Map<string, Promise<Principal>>();
  let verifications = 0;
  let cacheHits = 0;
  // Bumped by clear(): a verification that started before a rotation must not repopulate the cache.
  let generation = 0;

  async function verify(token: string): Promise<Principal> {
    verifications += 1;
    let payload: JWTPayload;
    try {
      ({ payload } = await jwtVerify(token, key, { ...baseOptions, currentDate: new Date(clock()) }));
    } catch (err) {
      throw refused(joseCode(err), err);
    }
    const exp = payload.exp;
    if (typeof exp !== "number") throw refused("missing exp claim");
    // Checked once, here: a cached principal only comes closer to its exp, so the cache stays sound.
    if (exp - clock() / 1000 > maxTtlS + clockToleranceS)
      throw refused("exp beyond the maximum token lifetime");
    return Object.freeze({
      customerId: customerIdOf(payload),
      tier: tierOf(payload, tiers),
      admin: isAdmin(payload),
      expiresAt: exp * 1000,
    });
  }

  // The token itself is the cache key: hashing it would cost more than the lookup saves, and the
  // process holds the tokens it verifies in memory anyway (never logged, never persisted).
  function remember(token: string, principal: Principal): void {
    if (clock() < principal.expiresAt) cache.set(token, principal);
  }

  /** The cached principal of `token` while it is valid; an expired entry is dropped. */
  function cached(token: string): Principal | undefined {
    const hit = cache.get(token);
    if (hit === undefined) return undefined;
    if (clock() >= hit.expiresAt) {
      cache.delete(token);
      return undefined;
    }
    cacheHits += 1;
    return hit;
  }

  return {
    peek(authorizationHeader) {
      if (typeof authorizationHeader !== "string" || authorizationHeader.length > MAX_HEADER_CHARS)
        return undefined;
      const token = BEARER_RE.exec(authorizationHeader)?.[1];
      return token === undefined ? undefined : cached(token);
    },

    async authenticate(authorizationHeader) {
      if (typeof authorizationHeader !== "string" || authorizationHeader.length === 0) {
        throw new AppError("unauthorized", "Missing bearer token", {
          headers: { "WWW-Authenticate": REALM },
        });
      }
      if (authorizationHeader.length > MAX_HEADER_CHARS) throw refused("authorization header too long");
      const token = BEARER_RE.exec(authorizationHeader)?.[1];
      if (token === undefined) throw refused("not a Bearer credential");

      const hit = cached(token);
      if (hit !== undefined) return hit;

      let pending = inflight.get(token);
      if (pending === undefined) {
        const started = generation;
        pending = verify(token).then((principal) => {
          if (started === generation) remember(token, principal);
          return principal;
        });
        inflight.set(token, pending);
        const forget = (): void => {
          if (inflight.get(token) === pending) inflight.delete(token);
        };
        pending.then(forget, forget);
      }
      return pending;
    },

    clear() {
      generation += 1;
      cache.clear();
      inflight.clear();
    },

    stats() {
      return { verifications, cacheHits, cached: cache.size };
    },
  };
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
