// The API server's HTTP timeouts, set deliberately instead of node's defaults (docs/decisions.md
// "HTTP server timeouts").
import type { ServerOptions } from "node:http";

/** HTTP_HEADERS_TIMEOUT_MS, HTTP_REQUEST_TIMEOUT_MS, HTTP_KEEP_ALIVE_TIMEOUT_MS. */
export interface HttpTimeouts {
  /** Time to receive a request's headers. */
  readonly headersMs: number;
  /** Time to receive a whole request, body included; the response may take longer. */
  readonly requestMs: number;
  /** How long an idle keep-alive connection stays open between requests. */
  readonly keepAliveMs: number;
}

/**
 * The `http.createServer` options for `timeouts`. Node enforces headers and request timeouts by a
 * periodic sweep (every 30 s by default, so a 30 s limit could hold a connection up to a minute);
 * the sweep here runs at a quarter of the shorter limit, at most once a second and at least every
 * 50 ms. A request that is too slow is answered `408` and its connection closed by node; once a
 * request has been received, neither limit applies to its response (SSE streams, sync waits).
 *
 * @throws RangeError when headersMs exceeds requestMs (node refuses such a server).
 */
export function httpServerOptions(timeouts: HttpTimeouts): ServerOptions {
  const { headersMs, requestMs, keepAliveMs } = timeouts;
  if (headersMs > requestMs) throw new RangeError("the headers timeout must not exceed the request timeout");
  return {
    headersTimeout: headersMs,
    requestTimeout: requestMs,
    keepAliveTimeout: keepAliveMs,
    connectionsCheckingInterval: Math.max(
      50,
      Math.min(1_000, Math.floor(Math.min(headersMs, requestMs) / 4)),
    ),
  };
}
