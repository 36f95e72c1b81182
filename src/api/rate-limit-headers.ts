// The IETF RateLimit-Policy and RateLimit header fields (draft-ietf-httpapi-ratelimit-headers-11,
// structured fields of RFC 9651) and the Retry-After of a refused request.

/** Largest sf-integer (RFC 9651 §3.3.1: at most 15 digits). */
const SF_INTEGER_MAX = 999_999_999_999_999;

/** A non-negative sf-integer: `n` rounded down, clamped to 0…{@link SF_INTEGER_MAX}. */
function sfInteger(n: number): string {
  return String(Math.min(SF_INTEGER_MAX, Math.max(0, Math.floor(n))));
}

/**
 * An sf-string (RFC 9651 §3.3.3): `s` in double quotes, `"` and `\` escaped.
 * @throws TypeError when `s` has a character outside printable ASCII (an sf-string cannot hold it).
 */
export function sfString(s: string): string {
  if (!/^[\x20-\x7e]*$/.test(s)) throw new TypeError("an sf-string holds printable ASCII only");
  return `"${s.replace(/["\\]/g, (c) => `\\${c}`)}"`;
}

/** Whole seconds until `ms` milliseconds have passed, rounded up (0 for none). */
export function wholeSecondsUntil(ms: number): number {
  return Math.max(0, Math.ceil(ms / 1000));
}

/**
 * One quota policy item of `RateLimit-Policy` (draft §3.1): the policy's name, `q` its quota (in
 * requests, the default unit) and `w` its window in seconds — `"submits";q=1200;w=60`.
 */
export function rateLimitPolicyItem(policy: string, quota: number, windowS: number): string {
  return `${sfString(policy)};q=${sfInteger(quota)};w=${sfInteger(windowS)}`;
}

/**
 * One service limit item of `RateLimit` (draft §4.1): the policy's name, `r` the quota left and `t`
 * the seconds until the window ends, within which no more than `r` may be used —
 * `"submits";r=1187;t=42`.
 */
export function rateLimitItem(policy: string, remaining: number, resetS: number): string {
  return rateLimitItemOf(policy)(remaining, resetS);
}

/** {@link rateLimitItem} of one policy, its name quoted once (for the hot path). */
export function rateLimitItemOf(policy: string): (remaining: number, resetS: number) => string {
  const head = `${sfString(policy)};r=`;
  return (remaining, resetS) => `${head}${sfInteger(remaining)};t=${sfInteger(resetS)}`;
}

/** A refused request's `Retry-After`: the seconds until the window ends, at least 1 (API.md §2). */
export function retryAfterSeconds(resetMs: number): number {
  return Math.max(1, wholeSecondsUntil(resetMs));
}
