// The board's door: an admin credential (a Bearer header, or the login cookie) on every request,
// verified each time by the API's authenticator (so a revoked API key or an expired JWT stops
// working at once); the board is read-only whatever the credential.
import type { MiddlewareHandler } from "hono";
import { AppError } from "../core/errors.js";
import type { ApiEnv } from "../api/context.js";
import {
  clearSessionCookie,
  credentialOf,
  LOGIN_PATH,
  wantsPage,
  type AdminAuthenticator,
  type SessionSettings,
} from "./session.js";

/**
 * Lets a request through with an admin principal on the context. Without one: a browser asking for
 * a page (no Authorization header, `Accept: text/html`) is sent to the login form (303; a refused
 * cookie is cleared), any other client gets the problem document — 401 `unauthorized` (no or an
 * invalid credential), 403 `forbidden` (a valid credential without the admin scope).
 */
export function requireAdmin(auth: AdminAuthenticator, session: SessionSettings): MiddlewareHandler<ApiEnv> {
  return async function requireAdminMiddleware(c, next) {
    const { header, cookie } = credentialOf(c);
    let refusal: AppError;
    try {
      const principal = auth.peek?.(header) ?? (await auth.authenticate(header));
      if (principal.admin) {
        c.set("principal", principal);
        return next();
      }
      refusal = new AppError("forbidden", "the admin board needs an admin credential");
    } catch (err) {
      if (!(err instanceof AppError) || err.code !== "unauthorized") throw err;
      refusal = err;
    }
    if (header === undefined || cookie) {
      if (cookie) clearSessionCookie(c, session);
      if (wantsPage(c)) return c.redirect(LOGIN_PATH, 303);
    }
    throw refusal;
  };
}

/** Only reads reach the board: anything else is 405 (nothing on the board may change a job). */
export const readOnlyBoard: MiddlewareHandler<ApiEnv> = async function readOnlyBoard(c, next) {
  if (c.req.method !== "GET" && c.req.method !== "HEAD") {
    throw new AppError("method_not_allowed", "the admin board is read-only", {
      headers: { allow: "GET, HEAD" },
    });
  }
  await next();
  // job data (redacted as it is) is for the admin's eyes only: never kept by a cache
  if (!c.req.path.includes("/static/")) c.res.headers.set("cache-control", "no-store");
};
