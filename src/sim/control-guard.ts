// Who may change the simulator at run time (PUT /sim/config, POST /sim/stats/reset): loopback
// clients, or, when SIM_CONFIG_TOKEN is set, holders of that bearer token.
import { BlockList, isIP } from "node:net";
import { getConnInfo } from "@hono/node-server/conninfo";
import type { MiddlewareHandler } from "hono";
import { bearerAuth } from "hono/bearer-auth";

const LOOPBACK = new BlockList();
LOOPBACK.addSubnet("127.0.0.0", 8, "ipv4");
LOOPBACK.addAddress("::1", "ipv6");

/** True for 127.0.0.0/8 and ::1, also written as IPv4-mapped IPv6 (`::ffff:127.0.0.1`). */
export function isLoopbackAddress(address: string | undefined): boolean {
  if (address === undefined) return false;
  const family = isIP(address);
  return family !== 0 && LOOPBACK.check(address, family === 6 ? "ipv6" : "ipv4");
}

/** The peer address of the request's socket, or undefined outside the node adapter. */
function remoteAddress(c: Parameters<MiddlewareHandler>[0]): string | undefined {
  try {
    return getConnInfo(c).remote.address;
  } catch {
    return undefined;
  }
}

/**
 * Guards the simulator's mutating routes, whatever address it listens on (`HOST`):
 * - with `token`: a request must carry `Authorization: Bearer <token>` (compared in constant time by
 *   hono's bearerAuth), from any address; otherwise 401 (400 for a malformed header);
 * - without: only loopback peers are served; any other peer (or an unknown one) gets 403.
 */
export function simControlGuard(opts: { token?: string }): MiddlewareHandler {
  if (opts.token !== undefined) {
    return bearerAuth({
      token: opts.token,
      realm: "render-sim",
      noAuthenticationHeader: { message: { error: "a bearer token is required (SIM_CONFIG_TOKEN)" } },
      invalidAuthenticationHeader: { message: { error: "malformed Authorization header" } },
      invalidToken: { message: { error: "invalid token" } },
    });
  }
  return async function loopbackOnly(c, next) {
    if (!isLoopbackAddress(remoteAddress(c))) {
      return c.json(
        { error: "only loopback clients may change the simulator (or set SIM_CONFIG_TOKEN)" },
        403,
      );
    }
    await next();
  };
}
