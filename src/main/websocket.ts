// Wires the WebSocket endpoint `/ws` onto the API's HTTP server: its settings (WS_*), the tenants'
// connection leases in Redis, the `upgrade` listener, and its close at shutdown — registered after
// the HTTP server's, so it runs first (the server's close waits for the upgraded sockets).
import type { EventEmitter } from "node:events";
import type { RedisClient } from "../infra/redis-client.js";
import type { Logger } from "pino";
import type { Env } from "../config/env.js";
import type { ApiDeps } from "../api/deps.js";
import type { ApiServices } from "../api/services.js";
import { createWsGateway, type WsGateway } from "../api/ws/gateway.js";
import type { WsConfig } from "../api/ws/session.js";
import { createWsLeases } from "../queues/ws-leases.js";
import type { Runtime } from "./runtime.js";

/** The WebSocket's bounds from the environment (README "WebSocket (/ws)"). */
export function wsConfigOf(env: Env): WsConfig {
  return {
    authTimeoutMs: env.WS_AUTH_TIMEOUT_MS,
    idleTimeoutMs: env.WS_IDLE_TIMEOUT_MS,
    pingIntervalMs: env.WS_PING_INTERVAL_MS,
    maxConnectionsPerTenant: env.WS_MAX_CONNECTIONS_PER_TENANT,
    maxJobsPerConnection: env.WS_MAX_JOBS_PER_CONNECTION,
    maxMessageBytes: env.WS_MAX_MESSAGE_BYTES,
    messagesPerS: env.WS_MESSAGES_PER_S,
    highWaterBytes: env.WS_HIGH_WATER_BYTES,
    maxBufferedBytes: env.WS_MAX_BUFFERED_BYTES,
    slowReaderMs: env.WS_SLOW_READER_MS,
    allowedOrigins: env.WS_ALLOWED_ORIGINS,
  };
}

export function attachWebSockets(opts: {
  readonly env: Env;
  readonly runtime: Runtime;
  /** The API's HTTP server (its `upgrade` events). */
  readonly server: Pick<EventEmitter, "on" | "off">;
  readonly api: ApiDeps;
  readonly services: ApiServices;
  readonly redis: RedisClient;
  readonly logger: Logger;
}): WsGateway {
  const { env } = opts;
  const gateway = createWsGateway({
    api: opts.api,
    services: opts.services,
    leases: createWsLeases(opts.redis, env.REDIS_PREFIX, { pipelineMax: env.REDIS_PIPELINE_MAX }),
    config: wsConfigOf(env),
    logger: opts.logger.child({ part: "ws" }),
  });
  opts.server.on("upgrade", gateway.handleUpgrade);
  opts.runtime.defer("websockets", async () => {
    opts.server.off("upgrade", gateway.handleUpgrade);
    await gateway.close();
  });
  return gateway;
}
