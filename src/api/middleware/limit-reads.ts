// Takes a unit of the caller's "reads" quota for an authenticated GET or HEAD (after authenticate),
// and puts the RateLimit headers on whatever the route answers.
import type { Context, MiddlewareHandler, Next } from "hono";
import type { Principal } from "../auth.js";
import type { ApiEnv } from "../context.js";
import type { RateLimiter } from "../rate-limits.js";

/**
 * Registered with `use` (every method) rather than `on("GET")`: a GET middleware would count as a GET
 * route in the method table and turn the 405 of a path without GET into a 404. Requests of other
 * methods, and those without a principal (authenticate skipped a method the path does not have),
 * pass untouched. A request that two registrations match (Hono's `/models/*` also matches `/models`)
 * takes one unit.
 */
export function limitReads(opts: { readonly limiter: RateLimiter }): MiddlewareHandler<ApiEnv> {
  const counted = new WeakSet<Context>();
  const limited = async (c: Context<ApiEnv>, next: Next, principal: Principal) => {
    counted.add(c);
    const headers = await opts.limiter.take("reads", principal);
    await next();
    // Success or problem document alike (the error handler has answered by now).
    if (headers !== undefined)
      for (const [name, value] of Object.entries(headers)) c.res.headers.set(name, value);
  };
  // Not async: what it lets through untouched (every submit) goes on without a promise of its own.
  return function limitReadsMiddleware(c, next) {
    const method = c.req.method;
    const principal = c.get("principal") as Principal | undefined;
    if ((method !== "GET" && method !== "HEAD") || principal === undefined || counted.has(c)) return next();
    return limited(c, next, principal);
  };
}
