// One authenticator for both kinds of bearer token (API.md §1): `rk_…` API keys go to the API-key
// verifier, everything else (JWTs, and every malformed header) to the JWT authenticator.
import { API_KEY_MARK, isApiKeyToken } from "../core/api-key.js";
import type { ApiKeyVerifier } from "./api-key-auth.js";
import type { Authenticator, AuthenticatorStats } from "./auth.js";

/** RFC 6750 §2.1: `Bearer 1*SP b64token` (the same rule as auth.ts). */
const BEARER_RE = /^Bearer +([A-Za-z0-9\-._~+/]+=*) *$/i;
/** auth.ts's bound: a longer header goes to the JWT side, which refuses it. */
const MAX_HEADER_CHARS = 8192;

/** The API key in an `Authorization` value, or undefined when it carries anything else. */
function apiKeyOf(header: string | undefined): string | undefined {
  // No key mark anywhere: a JWT (the usual header), without a second run of the Bearer pattern.
  if (typeof header !== "string" || header.length > MAX_HEADER_CHARS || !header.includes(API_KEY_MARK))
    return undefined;
  const token = BEARER_RE.exec(header)?.[1];
  return token !== undefined && isApiKeyToken(token) ? token : undefined;
}

/** Both sides' counters summed, and the API keys' own. */
export interface RoutedStats extends AuthenticatorStats {
  readonly apiKeys: ReturnType<ApiKeyVerifier["stats"]>;
}

/**
 * An {@link Authenticator} that sends `Bearer rk_…` to `apiKeys` and every other header to `jwt`
 * (which also answers a missing or malformed header). `sources()` of the JWT side is passed through
 * when it has one.
 */
export function createTokenRouter<A extends Authenticator>(
  jwt: A,
  apiKeys: ApiKeyVerifier,
): Authenticator & Pick<A, "sources" extends keyof A ? "sources" : never> & { stats(): RoutedStats } {
  const router = {
    authenticate(header: string | undefined) {
      const key = apiKeyOf(header);
      return key === undefined ? jwt.authenticate(header) : apiKeys.authenticate(key);
    },
    peek(header: string | undefined) {
      const key = apiKeyOf(header);
      return key === undefined ? jwt.peek(header) : apiKeys.peek(key);
    },
    clear() {
      jwt.clear();
      apiKeys.clear();
    },
    stats(): RoutedStats {
      const j = jwt.stats();
      const k = apiKeys.stats();
      return {
        verifications: j.verifications + k.lookups,
        cacheHits: j.cacheHits + k.cacheHits,
        cached: j.cached + k.cached,
        apiKeys: k,
      };
    },
  };
  const sources = (jwt as { sources?: unknown }).sources;
  if (typeof sources === "function") {
    const forward = sources as (this: A, ...args: unknown[]) => unknown;
    Object.assign(router, { sources: (...args: unknown[]) => forward.apply(jwt, args) });
  }
  return router as never;
}
