// Every response carries X-Request-Id (and the original API's X-Weyl-Request-Id) and
// X-Content-Type-Options: nosniff; a well-formed client id is echoed.
import type { MiddlewareHandler } from "hono";
import { REQUEST_ID_RE, type IdGenerator } from "../../core/ids.js";
import type { ApiEnv } from "../context.js";
import { isStamped, requestHeader, requestIdHeaders } from "../respond.js";

export function requestId(opts: { ids: IdGenerator }): MiddlewareHandler<ApiEnv> {
  return async function requestIdMiddleware(c, next) {
    const sent = requestHeader(c, "x-request-id");
    const id = sent && REQUEST_ID_RE.test(sent) ? sent : opts.ids("request");
    c.set("requestId", id);
    await next();
    // Hot routes and problem documents build their responses with these headers already (setting
    // them here would make the node adapter rebuild the headers); the rest get them now.
    if (!isStamped(c.res)) {
      for (const [name, value] of Object.entries(requestIdHeaders(id))) c.res.headers.set(name, value);
    }
  };
}
