// The admin session: where the board lives, the login cookie (it holds the admin credential itself,
// HttpOnly, re-verified on every request: docs/decisions.md "Admin UI"), where a request's credential
// comes from (an Authorization header, else that cookie; never the URL), and the same-origin check
// of the login and logout forms.
import type { Context } from "hono";
import { deleteCookie, getCookie, setCookie } from "hono/cookie";
import type { Principal } from "../api/auth.js";
import { requestHeader } from "../api/respond.js";

export const ADMIN_PATH = "/admin";
export const BOARD_PATH = `${ADMIN_PATH}/queues`;
export const LOGIN_PATH = `${ADMIN_PATH}/login`;
export const LOGOUT_PATH = `${ADMIN_PATH}/logout`;
/** Every path the admin face answers (the API forwards these to it, and leaves the rest of /admin). */
export const ADMIN_FACE_PATHS: readonly string[] = [
  ADMIN_PATH,
  LOGIN_PATH,
  LOGOUT_PATH,
  BOARD_PATH,
  `${BOARD_PATH}/*`,
];
/** The login cookie's name. */
export const ADMIN_COOKIE = "rg_admin";
/** Longest credential accepted from the form or the cookie (auth.ts refuses longer headers too). */
export const MAX_CREDENTIAL_CHARS = 8192;

/** Who checks an admin credential: the API's authenticator (JWTs and API keys). */
export interface AdminAuthenticator {
  authenticate(authorizationHeader: string | undefined): Promise<Principal>;
  peek?(authorizationHeader: string | undefined): Principal | undefined;
}

export interface SessionSettings {
  /** Upper bound of the cookie's Max-Age (ADMIN_SESSION_TTL_S). */
  readonly ttlS: number;
  /** Cookies only over https (PUBLIC_URL is https). */
  readonly secure: boolean;
  /** PUBLIC_URL's origin, when set: a form posted from there is same-origin. */
  readonly publicOrigin?: string;
}

/** The request's credential as an Authorization value: the header, else the login cookie. */
export function credentialOf(c: Context): { header: string | undefined; cookie: boolean } {
  const header = requestHeader(c, "authorization");
  if (header !== undefined) return { header, cookie: false };
  const value = getCookie(c, ADMIN_COOKIE);
  if (value === undefined || value === "" || value.length > MAX_CREDENTIAL_CHARS) {
    return { header: undefined, cookie: value !== undefined };
  }
  return { header: `Bearer ${value}`, cookie: true };
}

const cookieOptions = (s: SessionSettings) =>
  ({ path: ADMIN_PATH, httpOnly: true, sameSite: "Strict", secure: s.secure }) as const;

/**
 * Sets the login cookie to `credential` for as long as it is valid, at most `ttlS` (the browser drops
 * it then; the server checks the credential itself on every request anyway).
 */
export function setSessionCookie(
  c: Context,
  s: SessionSettings,
  credential: string,
  principal: Principal,
  now: number,
): void {
  const left = Math.floor((principal.expiresAt - now) / 1000);
  const maxAge = Math.max(1, Math.min(s.ttlS, Number.isFinite(left) ? left : s.ttlS));
  setCookie(c, ADMIN_COOKIE, credential, { ...cookieOptions(s), maxAge });
}

export function clearSessionCookie(c: Context, s: SessionSettings): void {
  deleteCookie(c, ADMIN_COOKIE, cookieOptions(s));
}

/**
 * Whether a form post comes from the board's own pages: refused when the browser says it comes from
 * another site (`Sec-Fetch-Site`) or names another origin (`Origin`: PUBLIC_URL's, or the request's
 * own host). A client that sends neither (a script; browsers always send `Origin` with a POST) passes.
 */
export function isSameOriginPost(c: Context, s: SessionSettings): boolean {
  const site = requestHeader(c, "sec-fetch-site");
  if (site !== undefined && site !== "same-origin" && site !== "none") return false;
  const origin = requestHeader(c, "origin");
  if (origin === undefined) return true;
  let url: URL;
  try {
    url = new URL(origin);
  } catch {
    return false; // also "null" (sandboxed or privacy-sensitive contexts)
  }
  if (s.publicOrigin !== undefined && url.origin === s.publicOrigin) return true;
  const host = requestHeader(c, "host") ?? new URL(c.req.url).host;
  return url.host === host.toLowerCase();
}

/** Whether the client is a browser navigating (wants a page, not a problem document). */
export function wantsPage(c: Context): boolean {
  return (requestHeader(c, "accept") ?? "").includes("text/html");
}
