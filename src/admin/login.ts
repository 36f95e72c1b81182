// `/admin/login` and `/admin/logout`: a form that takes an admin token (a JWT with the admin scope
// or an admin API key) and keeps it in an HttpOnly, SameSite=Strict cookie scoped to /admin; the
// token never travels in a URL. Logout clears the cookie.
import { Hono, type Context } from "hono";
import { bodyLimit } from "hono/body-limit";
import type { ApiEnv } from "../api/context.js";
import { AppError } from "../core/errors.js";
import type { Clock } from "../core/time.js";
import { loginPage, logoutPage, PAGE_HEADERS } from "./pages.js";
import {
  BOARD_PATH,
  clearSessionCookie,
  isSameOriginPost,
  LOGIN_PATH,
  LOGOUT_PATH,
  MAX_CREDENTIAL_CHARS,
  setSessionCookie,
  type AdminAuthenticator,
  type SessionSettings,
} from "./session.js";

/** Largest login or logout form body (a token is at most MAX_CREDENTIAL_CHARS). */
const MAX_FORM_BYTES = 16 * 1024;
const FORM_TYPE_RE = /^(application\/x-www-form-urlencoded|multipart\/form-data)\b/i;

export interface LoginDeps {
  readonly auth: AdminAuthenticator;
  readonly session: SessionSettings;
  readonly clock: Clock;
}

const html = (c: Context, body: string, status: 200 | 401 | 403 = 200) => c.body(body, status, PAGE_HEADERS);

/** Refuses a form post that is too large, not a form, or sent from another site. */
function formPost(session: SessionSettings) {
  const limit = bodyLimit({
    maxSize: MAX_FORM_BYTES,
    onError: () => {
      throw new AppError("request_too_large", `the form may have at most ${MAX_FORM_BYTES} bytes`);
    },
  });
  return [
    async function sameOriginForm(c: Context, next: () => Promise<void>) {
      if (!isSameOriginPost(c, session)) {
        throw new AppError("forbidden", "a form posted from another site is refused");
      }
      if (!FORM_TYPE_RE.test(c.req.header("content-type") ?? "")) {
        throw new AppError("unsupported_media_type", "send the form as application/x-www-form-urlencoded");
      }
      await next();
    },
    limit,
  ] as const;
}

/** Routes relative to the admin base path: `/login`, `/logout`. */
export function loginRoutes(deps: LoginDeps): Hono<ApiEnv> {
  const app = new Hono<ApiEnv>();
  const rel = (path: string) => path.slice("/admin".length);

  app.get(rel(LOGIN_PATH), (c) => html(c, loginPage(LOGIN_PATH)));

  app.post(rel(LOGIN_PATH), ...formPost(deps.session), async (c) => {
    const form = await c.req.parseBody();
    const raw = form["token"];
    const token = typeof raw === "string" ? raw.trim() : "";
    if (token === "" || token.length > MAX_CREDENTIAL_CHARS || /\s/.test(token)) {
      return html(c, loginPage(LOGIN_PATH, "Enter an admin token."), 401);
    }
    let principal;
    try {
      principal = await deps.auth.authenticate(`Bearer ${token}`);
    } catch (err) {
      if (!(err instanceof AppError) || err.code !== "unauthorized") throw err;
      return html(c, loginPage(LOGIN_PATH, "That token is not valid (or has expired)."), 401);
    }
    if (!principal.admin) {
      return html(c, loginPage(LOGIN_PATH, "That token has no admin scope."), 403);
    }
    setSessionCookie(c, deps.session, token, principal, deps.clock());
    c.header("cache-control", "no-store");
    return c.redirect(BOARD_PATH, 303);
  });

  app.get(rel(LOGOUT_PATH), (c) => html(c, logoutPage(LOGOUT_PATH)));

  app.post(rel(LOGOUT_PATH), ...formPost(deps.session), (c) => {
    clearSessionCookie(c, deps.session);
    c.header("cache-control", "no-store");
    return c.redirect(LOGIN_PATH, 303);
  });

  return app;
}
