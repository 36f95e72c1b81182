// Responses and request headers on the fast path of the node adapter: plain header objects are
// written as they are, while touching a `Headers` object (reading `c.req.header()` or setting
// `c.res.headers`) makes the adapter build a web Headers instance with per-header validation — a
// large share of a small request's CPU.
import type { IncomingMessage, ServerResponse } from "node:http";
import type { Context } from "hono";

interface NodeBindings {
  readonly incoming?: IncomingMessage;
  readonly outgoing?: ServerResponse;
}

const bindings = (c: Context): NodeBindings | undefined => c.env as NodeBindings | undefined;

/** A request header (lower-case name), read from the node request when there is one. */
export function requestHeader(c: Context, name: string): string | undefined {
  const incoming = bindings(c)?.incoming;
  if (!incoming) return c.req.header(name);
  const v = incoming.headers[name];
  return Array.isArray(v) ? v.join(", ") : v;
}

/**
 * Sets a header on whatever response this request gets (also problem documents and streams), when
 * running on node: node merges it into the head the adapter writes. Returns false elsewhere (tests
 * calling `app.request()`), where the caller sets it on the response.
 */
export function presetResponseHeader(c: Context, name: string, value: string): boolean {
  const outgoing = bindings(c)?.outgoing;
  if (!outgoing || outgoing.headersSent) return false;
  outgoing.setHeader(name, value);
  return true;
}

/** A JSON response with plain headers. */
export function jsonResponse(
  body: unknown,
  status = 200,
  headers: Readonly<Record<string, string>> = {},
): Response {
  return new Response(JSON.stringify(body), {
    status,
    headers: { "content-type": "application/json", ...headers },
  });
}
