// 405 answers derived from the routes registered on the app: the methods a path has, read from Hono's
// own router, so a new route needs no second entry anywhere.
import type { Context, Env, Hono } from "hono";
import { matchedRoutes } from "hono/route";
import { METHOD_NAME_ALL } from "hono/router";

/** Order of the methods in an `Allow` header; a method not listed here follows them. */
const ALLOW_ORDER = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"];

/** The methods of a path, from the routes registered on an app. */
export interface MethodTable {
  /**
   * The methods registered for `path`, in `Allow` order, or undefined when no route has the path.
   * HEAD is listed only where a route registers it (Hono answers HEAD with the GET handler anyway).
   */
  allowed(path: string): readonly string[] | undefined;
  /**
   * The methods of the request's path when its method is not one of them (HEAD counting as GET):
   * what a 405 names in `Allow`. Undefined when a route took the request (the cheap case: nothing
   * beyond the request's own match is looked at) or when no route has the path (a 404).
   */
  refused(c: Context): readonly string[] | undefined;
}

/**
 * The method table of `app`, read from its routes when first needed — by then every route is
 * registered (Hono's router takes no route once it has matched a request). Routes registered for
 * every method (`use`, `all`) are middleware here: they give a path no method.
 */
export function createMethodTable<E extends Env>(app: Hono<E>): MethodTable {
  let methods: readonly string[] | undefined;
  const hasMethod = (method: string, path: string): boolean =>
    app.router.match(method, path)[0].some(([[, route]]) => route.method !== METHOD_NAME_ALL);

  const table: MethodTable = {
    allowed(path) {
      methods ??= registeredMethods(app.routes.map((r) => r.method));
      const found = methods.filter((m) => hasMethod(m, path));
      return found.length > 0 ? found : undefined;
    },
    refused(c) {
      if (hasRoute(c)) return undefined;
      const allowed = table.allowed(c.req.path);
      return allowed !== undefined && !isAllowed(allowed, c.req.method) ? allowed : undefined;
    },
  };
  return table;
}

/** Whether a route of the request's method (HEAD running as GET) matched it, not only middleware. */
function hasRoute(c: Context): boolean {
  return matchedRoutes(c).some((route) => route.method !== METHOD_NAME_ALL);
}

/** Whether `method` is one of `allowed`, HEAD counting as GET. */
function isAllowed(allowed: readonly string[], method: string): boolean {
  return allowed.includes(method) || (method === "HEAD" && allowed.includes("GET"));
}

/** The distinct methods of the routes, middleware's aside, in `Allow` order. */
function registeredMethods(routeMethods: readonly string[]): readonly string[] {
  const rank = (m: string): number => {
    const i = ALLOW_ORDER.indexOf(m);
    return i === -1 ? ALLOW_ORDER.length : i;
  };
  const distinct = [...new Set(routeMethods)].filter((m) => m !== METHOD_NAME_ALL);
  // A stable sort: methods outside ALLOW_ORDER keep the order of their first route.
  return distinct.sort((a, b) => rank(a) - rank(b));
}
