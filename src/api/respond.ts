// Responses and request headers on the fast path of the node adapter: plain header objects are
// written as they are, while touching a `Headers` object (reading `c.req.header()` or setting
// `c.res.headers`) makes the adapter build a web Headers instance with per-header validation — a
// large share of a small request's CPU.
import type { IncomingMessage } from "node:http";
import type { Context } from "hono";

interface NodeBindings {
  readonly incoming?: IncomingMessage;
}

/** The node request behind the context (absent under `app.request()` and other runtimes). */
export function nodeRequestOf(c: Context): IncomingMessage | undefined {
  return (c.env as NodeBindings | undefined)?.incoming;
}

/** A request header (lower-case name), read from the node request when there is one. */
export function requestHeader(c: Context, name: string): string | undefined {
  const incoming = nodeRequestOf(c);
  if (!incoming) return c.req.header(name);
  const v = incoming.headers[name];
  return Array.isArray(v) ? v.join(", ") : v;
}

/** Marks a response that already carries the request id headers (the middleware adds them otherwise). */
const STAMPED = Symbol("request id headers set");

/** The request id headers of every response (X-Weyl-Request-Id for clients of the original API). */
export function requestIdHeaders(requestId: string): Record<string, string> {
  return { "x-request-id": requestId, "x-weyl-request-id": requestId };
}

/** A response built with plain headers that already include the request id headers. */
export function stampedResponse(
  body: string | null,
  status: number,
  headers: Record<string, string>,
): Response {
  const res = new Response(body, { status, headers });
  (res as unknown as Record<symbol, boolean>)[STAMPED] = true;
  return res;
}

export function isStamped(res: Response): boolean {
  return (res as unknown as Record<symbol, boolean>)[STAMPED] === true;
}

/** A JSON response with plain headers, stamped with the request's id. */
export function jsonResponse(
  c: Context,
  body: unknown,
  status = 200,
  headers: Readonly<Record<string, string>> = {},
): Response {
  return stampedResponse(JSON.stringify(body), status, {
    "content-type": "application/json",
    ...requestIdHeaders(c.get("requestId" as never) as string),
    ...headers,
  });
}
