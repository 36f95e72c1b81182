// GET /metrics: the fleet's metrics in Prometheus's text format (README "Metrics and logs"). Open
// unless METRICS_TOKEN is set; then only `Authorization: Bearer <METRICS_TOKEN>` (compared in
// constant time) gets them, anything else 401 `unauthorized`.
import { createHash, timingSafeEqual } from "node:crypto";
import { Hono } from "hono";
import { AppError } from "../../core/errors.js";
import type { ApiEnv } from "../context.js";
import { requestHeader } from "../respond.js";

/** Far above any real token; a longer header is refused before it is hashed. */
const MAX_HEADER_CHARS = 1024;
const REALM = 'Bearer realm="render-gateway metrics"';

/**
 * Whether `header` is `Bearer <token>`: both sides hashed first, so the comparison takes the same
 * time whatever the lengths and wherever they differ.
 */
export function bearerMatches(header: string | undefined, token: string): boolean {
  if (header === undefined || header.length > MAX_HEADER_CHARS) return false;
  const m = /^Bearer +(\S+) *$/i.exec(header);
  const given = createHash("sha256")
    .update(m?.[1] ?? "")
    .digest();
  const expected = createHash("sha256").update(token).digest();
  return timingSafeEqual(given, expected) && m !== null;
}

export interface MetricsRouteDeps {
  /** METRICS_TOKEN; undefined: the route is open. */
  readonly token: string | undefined;
  readonly contentType: string;
  /** The exposition text (src/main/metrics.ts fleetExposition). */
  readonly text: () => Promise<string>;
}

export function metricsRoutes(deps: MetricsRouteDeps) {
  const app = new Hono<ApiEnv>();
  app.on(["GET", "HEAD"], "/metrics", async (c) => {
    if (deps.token !== undefined && !bearerMatches(requestHeader(c, "authorization"), deps.token)) {
      throw new AppError("unauthorized", "a bearer token is required for /metrics (METRICS_TOKEN)", {
        headers: { "WWW-Authenticate": REALM },
      });
    }
    c.header("cache-control", "no-store");
    return c.body(await deps.text(), 200, { "content-type": deps.contentType });
  });
  return app;
}
