// The WebSocket gateway at shutdown: an upgrade whose header token is still being checked when
// close() begins is cut off (server.closeAllConnections() does not see sockets mid-upgrade).
import http from "node:http";
import net from "node:net";
import pino from "pino";
import { describe, it } from "vitest";
import type { ApiDeps } from "../../src/api/deps.js";
import { createWsGateway } from "../../src/api/ws/gateway.js";
import type { SessionDeps, WsConfig } from "../../src/api/ws/session.js";
import type { WsLeases } from "../../src/queues/ws-leases.js";

const principal = { customerId: "c1", tier: "free", admin: false, expiresAt: Date.now() + 1e9 };
const config: WsConfig = {
  authTimeoutMs: 60_000,
  idleTimeoutMs: 60_000,
  pingIntervalMs: 60_000,
  maxConnectionsPerTenant: 5,
  maxJobsPerConnection: 8,
  maxMessageBytes: 64 * 1024,
  messagesPerS: 10,
  highWaterBytes: 1 << 20,
  maxBufferedBytes: 4 << 20,
  slowReaderMs: 5_000,
};

describe("the gateway at shutdown", () => {
  it("cuts off a socket whose header token is still being checked", async () => {
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    const api = {
      clock: () => Date.now(),
      ids: () => "req_x",
      accepting: () => true,
      authenticate: async () => {
        await gate;
        return principal;
      },
    } as unknown as ApiDeps;
    const leases: WsLeases = { hold: async () => ({ held: true, live: 1 }), release: async () => {} };
    const gw = createWsGateway({
      api,
      services: {} as SessionDeps["services"],
      leases,
      config,
      logger: pino({ level: "silent" }),
    });
    const server = http.createServer((_q, s) => s.end());
    server.on("upgrade", gw.handleUpgrade);
    await new Promise<void>((r) => server.listen(0, "127.0.0.1", () => r()));
    const port = (server.address() as net.AddressInfo).port;
    const client = net.connect(port, "127.0.0.1");
    const clientClosed = new Promise((r) => client.on("close", r));
    client.on("error", () => undefined);
    const asked = new Promise<void>((r) => server.once("upgrade", () => r()));
    client.write(
      "GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\n" +
        "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nAuthorization: Bearer abc\r\n\r\n",
    );
    await asked;
    await gw.close();
    release();
    // Before the fix the socket stayed open unanswered and server.close() never returned.
    await Promise.all([clientClosed, new Promise((r) => server.close(r))]);
  });
});
