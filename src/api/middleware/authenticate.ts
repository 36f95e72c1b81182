// Requires a valid bearer token and puts the principal on the context.
import type { Context, MiddlewareHandler } from "hono";
import type { Principal } from "../auth.js";
import type { ApiEnv } from "../context.js";
import { requestHeader } from "../respond.js";

export function authenticate(opts: {
  authenticate(header: string | undefined): Promise<Principal>;
  /** A cached principal without waiting (the common case: a client sends the same token). */
  peek?(header: string | undefined): Principal | undefined;
  /** Requests this middleware lets through untouched (e.g. a method the path does not have: 405). */
  skip?(c: Context<ApiEnv>): boolean;
}): MiddlewareHandler<ApiEnv> {
  return async function authenticateMiddleware(c, next) {
    if (opts.skip?.(c)) return next();
    const header = requestHeader(c, "authorization");
    c.set("principal", opts.peek?.(header) ?? (await opts.authenticate(header)));
    return next();
  };
}
