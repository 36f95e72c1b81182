// Bearer-token authentication (API.md §1): jose-verified JWTs, cached per token until their `exp`.
import { decodeProtectedHeader, jwtVerify } from "jose";
import type { JWTPayload, JWTVerifyOptions } from "jose";
import { AppError } from "../core/errors.js";
import { createLru } from "../core/lru.js";
import type { Clock } from "../core/time.js";
import { DEFAULT_TIER } from "../core/tiers.js";
import type { RemoteKeySet } from "./jwks-remote.js";
import type { PublicKey } from "./jwt-keys.js";
import { assertSecret, CUSTOMER_ID_RE } from "./sign-token.js";
import { createTokenKeys, type AuthSources, type Selected } from "./token-keys.js";

export type { TierName } from "../core/tiers.js";
export type { AuthSources } from "./token-keys.js";
export { parseTtl, signToken, type SignTokenOptions } from "./sign-token.js";

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
  /**
   * The HS256 key (`JWT_SECRET`, or the JWT key derived from the dev secret); at least 32 bytes.
   * Absent: HS256 tokens are refused (then `publicKeys` or `jwks` must be given).
   */
  readonly secret?: Uint8Array;
  /** Public keys with kids (`JWT_PUBLIC_KEYS`, see parsePublicKeyFile). */
  readonly publicKeys?: readonly PublicKey[];
  /** The key set of `JWKS_URL`; the authenticator forgets its cache when a fetch removes a key. */
  readonly jwks?: RemoteKeySet;
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
  /** The key sources for admins (GET /ready): plain JSON, never a secret. */
  sources(): AuthSources;
}

/** RFC 6750 §2.1: `Bearer 1*SP b64token`. */
const BEARER_RE = /^Bearer +([A-Za-z0-9\-._~+/]+=*) *$/i;
/**
 * A JWS in compact form (RFC 7515 §7.1): three parts of base64url without padding (§2). jose's
 * decoder also takes `=` padding, so a token with `==` appended verified as well: refused here.
 */
const COMPACT_JWS_RE = /^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$/;
/** Far above any real JWT; keeps a hostile header from costing a large hash. */
const MAX_HEADER_CHARS = 8192;
const REALM = 'Bearer realm="render-gateway"';

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
 * Makes the request authenticator of API.md §1. Tokens are verified with jose against the key the
 * selection rule of createTokenKeys picks (HS256 secret, local public keys, JWKS; one algorithm per
 * key type), `exp`
 * required, `nbf` honoured, `iss`/`aud` when configured, `clockToleranceS` leeway), and `exp` may lie
 * at most `maxTtlS` (plus the leeway) ahead, so no token outlives the configured lifetime. Successful
 * verifications are remembered in a bounded LRU keyed by the token, and a cached entry is
 * served only while the injected clock is before the token's `exp`, so a hot token costs a map
 * lookup instead of a jose verify. Concurrent first uses of one token share a single verify.
 *
 * @throws TypeError when the secret is shorter than 32 bytes, no key source is given, or `tiers` is
 *   not a non-empty list of names; RangeError when a numeric option is out of range.
 */
export function createAuthenticator(opts: AuthenticatorOptions): Authenticator {
  if (opts.secret !== undefined) assertSecret(opts.secret);
  if (opts.secret === undefined && (opts.publicKeys ?? []).length === 0 && opts.jwks === undefined)
    throw new TypeError("give a secret, public keys or a JWKS key set");
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
  // The secret is copied there, so a caller reusing its buffer cannot change the key behind the cache.
  const keys = createTokenKeys({
    ...(opts.secret === undefined ? {} : { secret: opts.secret }),
    ...(opts.publicKeys === undefined ? {} : { publicKeys: opts.publicKeys }),
    ...(opts.jwks === undefined ? {} : { remote: opts.jwks }),
  });
  const baseOptions: JWTVerifyOptions = {
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
    let selected: Selected;
    try {
      selected = await keys.select(decodeProtectedHeader(token));
    } catch (err) {
      throw refused((err as Error).message, err);
    }
    let payload: JWTPayload;
    try {
      ({ payload } = await jwtVerify(token, selected.key, {
        ...baseOptions,
        algorithms: [...selected.algorithms],
        currentDate: new Date(clock()),
      }));
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

  const authenticator: Authenticator = {
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
      if (!COMPACT_JWS_RE.test(token)) throw refused("not a compact JWS (base64url, no padding)");

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

    sources: () => keys.sources(),
  };
  keys.onKeysRemoved(() => authenticator.clear());
  return authenticator;
}
