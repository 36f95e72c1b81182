// Every response carries X-Request-Id (and the original API's X-Weyl-Request-Id); a well-formed
// client id is echoed.
import type { MiddlewareHandler } from "hono";
import { REQUEST_ID_RE, type IdGenerator } from "../../core/ids.js";
import type { ApiEnv } from "../context.js";
import { presetResponseHeader, requestHeader } from "../respond.js";

export function requestId(opts: { ids: IdGenerator }): MiddlewareHandler<ApiEnv> {
  return async function requestIdMiddleware(c, next) {
    const sent = requestHeader(c, "x-request-id");
    const id = sent && REQUEST_ID_RE.test(sent) ? sent : opts.ids("request");
    c.set("requestId", id);
    if (presetResponseHeader(c, "x-request-id", id) && presetResponseHeader(c, "x-weyl-request-id", id)) {
      return next();
    }
    await next();
    c.res.headers.set("x-request-id", id);
    c.res.headers.set("x-weyl-request-id", id);
  };
}
