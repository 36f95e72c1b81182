// Serving a role's Hono app on HOST:PORT (api, admin): the server's timeouts, the answers to requests
// its parser refuses, its close at shutdown (streams ended after a short grace), and the URL it is
// reached at.
import { serve, type ServerType } from "@hono/node-server";
import type { AddressInfo } from "node:net";
import { clientErrorListener } from "../api/client-error.js";
import { createRandomIds } from "../core/ids.js";
import { httpServerOptions } from "./http-timeouts.js";
import type { RoleContext } from "./role-context.js";

/**
 * Listens with `fetch`; resolves with the server (the api role adds its WebSocket upgrade to it), the
 * bound port and the server's own `http://HOST:PORT`.
 */
export async function listenHttp(
  ctx: RoleContext,
  fetch: (req: Request) => Response | Promise<Response>,
): Promise<{ server: ServerType; port: number; localUrl: string }> {
  const { env } = ctx.settings;
  const server: ServerType = await new Promise((resolve, reject) => {
    const s = serve(
      {
        fetch,
        hostname: env.HOST,
        port: env.PORT,
        serverOptions: httpServerOptions({
          headersMs: env.HTTP_HEADERS_TIMEOUT_MS,
          requestMs: env.HTTP_REQUEST_TIMEOUT_MS,
          keepAliveMs: env.HTTP_KEEP_ALIVE_TIMEOUT_MS,
        }),
      },
      () => resolve(s),
    );
    s.once("error", reject);
  });
  // What node's parser refuses (headers too large, too slow, malformed) is answered as a problem too.
  server.on("clientError", clientErrorListener(createRandomIds()));
  const port = (server.address() as AddressInfo).port;
  ctx.runtime.defer("http server", async () => {
    const closed = new Promise<void>((r) => server.close(() => r()));
    // Streams (SSE, sync waits) would hold the close forever: end them after a short grace.
    const t = setTimeout(
      () => (server as unknown as { closeAllConnections(): void }).closeAllConnections(),
      2_000,
    );
    await closed;
    clearTimeout(t);
  });
  return { server, port, localUrl: `http://${env.HOST.includes(":") ? `[${env.HOST}]` : env.HOST}:${port}` };
}
