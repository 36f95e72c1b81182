// Requires a valid bearer token and puts the principal on the context.
import type { Context, MiddlewareHandler, Next } from "hono";
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
  const verified = async (c: Context<ApiEnv>, next: Next, header: string | undefined) => {
    c.set("principal", await opts.authenticate(header));
    return next();
  };
  // Not async: a cached principal (the usual request) goes on without a promise of its own.
  return function authenticateMiddleware(c, next) {
    if (opts.skip?.(c)) return next();
    const header = requestHeader(c, "authorization");
    const cached = opts.peek?.(header);
    if (cached === undefined) return verified(c, next, header);
    c.set("principal", cached);
    return next();
  };
}
