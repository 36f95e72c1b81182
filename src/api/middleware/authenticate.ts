// Requires a valid bearer token and puts the principal on the context.
import type { MiddlewareHandler } from "hono";
import type { Principal } from "../auth.js";
import type { ApiEnv } from "../context.js";
import { requestHeader } from "../respond.js";

export function authenticate(opts: {
  authenticate(header: string | undefined): Promise<Principal>;
}): MiddlewareHandler<ApiEnv> {
  return async function authenticateMiddleware(c, next) {
    c.set("principal", await opts.authenticate(requestHeader(c, "authorization")));
    await next();
  };
}
