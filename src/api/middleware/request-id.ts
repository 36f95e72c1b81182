// Every response carries X-Request-Id (and the original API's X-Weyl-Request-Id) and
// X-Content-Type-Options: nosniff; a well-formed client id is echoed.
import type { Context, MiddlewareHandler } from "hono";
import { REQUEST_ID_RE, type IdGenerator } from "../../core/ids.js";
import type { ApiEnv } from "../context.js";
import { isStamped, requestHeader, requestIdHeaders } from "../respond.js";

/** The request's id — a well-formed one the client sent, else a new one — put on the context. */
export function assignRequestId(c: Context<ApiEnv>, ids: IdGenerator): string {
  const sent = requestHeader(c, "x-request-id");
  const id = sent && REQUEST_ID_RE.test(sent) ? sent : ids("request");
  c.set("requestId", id);
  return id;
}

/** Puts the request id headers on the answer, unless it was built with them. */
export function stampRequestId(c: Context<ApiEnv>, id: string): void {
  // Hot routes and problem documents build their responses with these headers already (setting
  // them here would make the node adapter rebuild the headers); the rest get them now.
  if (!isStamped(c.res)) {
    for (const [name, value] of Object.entries(requestIdHeaders(id))) c.res.headers.set(name, value);
  }
}

/** The two as a middleware of its own (the API's access log does both itself: api/app.ts). */
export function requestId(opts: { ids: IdGenerator }): MiddlewareHandler<ApiEnv> {
  return async function requestIdMiddleware(c, next) {
    const id = assignRequestId(c, opts.ids);
    await next();
    stampRequestId(c, id);
  };
}
