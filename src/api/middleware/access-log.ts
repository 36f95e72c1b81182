// One access-log line (pino, info) and the HTTP metrics of every request: request id, caller
// (customer and API key prefix — never a token, a key or a prompt), method, route pattern, status,
// time to the response and, for a problem document, its error code. The route is the pattern that
// took the request (`/jobs/:id`), never the raw path, so the metrics' labels stay bounded.
import type { MiddlewareHandler } from "hono";
import { routePath } from "hono/route";
import type { Logger } from "pino";
import type { ApiRecorder } from "../../core/metrics.js";
import type { ApiEnv } from "../context.js";
import { callerOf, problemCodeOf } from "../problem.js";
import type { IdGenerator } from "../../core/ids.js";
import { assignRequestId, stampRequestId } from "./request-id.js";

/** The route label of a request that only the app-wide middleware matched (a path the app does not have). */
const UNMATCHED = "unmatched";
const APP_WIDE = new Set(["", "*", "/*"]);

/**
 * The middleware, to be registered first (outermost): it sees the answer the error handler and the
 * 404/405 handler made. A stream's time is the time to its headers. Given `ids`, it is also the
 * request-id middleware (request-id.ts), inside its timing as that was: one middleware, and one
 * layer of promises, less per request.
 */
export function accessLog(opts: {
  readonly logger: Logger;
  readonly metrics: Pick<ApiRecorder, "request">;
  readonly ids?: IdGenerator;
}): MiddlewareHandler<ApiEnv> {
  const ids = opts.ids;
  // The line holds only the fields below, every one a string or a number this middleware sets from
  // checked values: redaction (infra/logger.ts), which walks every line for credentials under any
  // name, would find nothing here and costs more than the rest of the line (about 10 µs of 15).
  const log = opts.logger.child({}, { redact: [] });
  return async function accessLogMiddleware(c, next) {
    const started = performance.now();
    let threw = false;
    try {
      if (ids === undefined) {
        await next();
      } else {
        const id = assignRequestId(c, ids);
        await next();
        stampRequestId(c, id);
      }
    } catch (err) {
      threw = true;
      throw err;
    } finally {
      const ms = performance.now() - started;
      // The last route that matched: the handler's pattern, else the pattern of the last middleware
      // (a path with no route of its method, answered 404 or 405), all patterns registered in code.
      const last = routePath(c, -1);
      const route = APP_WIDE.has(last) ? UNMATCHED : last;
      const status = threw ? 500 : c.res.status;
      const code = threw ? "internal_error" : problemCodeOf(c.res);
      opts.metrics.request(c.req.method, route, status, ms / 1000, code);
      if (log.isLevelEnabled("info")) {
        log.info(
          {
            requestId: c.get("requestId"),
            ...callerOf(c),
            method: c.req.method,
            route,
            status,
            ms: Math.round(ms * 10) / 10,
            ...(code === undefined ? {} : { code }),
          },
          "request",
        );
      }
    }
  };
}
