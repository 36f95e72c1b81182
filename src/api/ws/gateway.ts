// The WebSocket endpoint `GET /ws` (API.md §3, §7; README "WebSocket (/ws)") on the API's HTTP
// server: the upgrade (path, Origin, a header token checked before it: 401 when bad), the process's
// connections, their heartbeat tick, and an ordered close at shutdown. One connection's protocol is
// session.ts.
import { STATUS_CODES, type IncomingMessage } from "node:http";
import type { Duplex } from "node:stream";
import { WebSocketServer } from "ws";
import { AppError, isAppError } from "../../core/errors.js";
import { REQUEST_ID_RE } from "../../core/ids.js";
import type { Principal } from "../auth.js";
import { isRedisUnavailable, problemBody } from "../problem.js";
import { requestIdHeaders } from "../respond.js";
import { shownValue } from "../request-input.js";
import { startSession, WS_CLOSE, type Session, type SessionDeps } from "./session.js";

export interface WsStats {
  /** Open connections of this process (authenticated or not yet). */
  readonly connections: number;
  /** Those still waiting for their `auth` message (or their lease). */
  readonly authenticating: number;
  /** Jobs the connections are admitting or following. */
  readonly jobs_in_flight: number;
  /** The most bytes any connection's buffer held in this process (the backpressure bound). */
  readonly peak_buffered_bytes: number;
  /** Progress, frame and position messages coalesced away, and their bytes. */
  readonly coalesced: number;
  readonly coalesced_bytes: number;
  readonly slow_reader_closes: number;
}

export interface WsGateway {
  /** The HTTP server's `upgrade` listener. */
  readonly handleUpgrade: (req: IncomingMessage, socket: Duplex, head: Buffer) => void;
  stats(): WsStats;
  /**
   * Stops taking connections, closes every one with 1001 and waits (about 3 s at most) for them and
   * their leases; what is left then is cut off.
   */
  close(): Promise<void>;
}

/** Query members that look like a token: refused, so a token never travels (and is logged) in a URL. */
const URL_TOKEN_PARAMS = ["token", "access_token", "authorization"];

/** Waits `ms` (or less, when `done` settles first); leaves no timer behind. */
async function within(done: Promise<unknown>, ms: number): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  await Promise.race([done, new Promise((r) => (timer = setTimeout(r, ms)))]);
  clearTimeout(timer);
}

const shuttingDown = () =>
  new AppError("unavailable", "the server is shutting down; connect again", {
    headers: { "retry-after": "1" },
  });

/** Answers an upgrade request with a problem document and closes the socket. */
function refuse(socket: Duplex, requestId: string, err: AppError): void {
  if (socket.destroyed) return;
  if (!socket.writable) {
    socket.destroy();
    return;
  }
  const body = JSON.stringify(problemBody(err.code, err.status, err.message, requestId, err.details));
  const headers: Record<string, string> = {
    "content-type": "application/problem+json",
    ...requestIdHeaders(requestId),
    connection: "close",
    "content-length": String(Buffer.byteLength(body)),
  };
  for (const [k, v] of Object.entries(err.headers ?? {})) headers[k.toLowerCase()] = v;
  const lines = Object.entries(headers).map(([k, v]) => `${k}: ${v.replace(/[\r\n]/g, " ")}`);
  socket.once("finish", () => socket.destroy());
  socket.end(
    `HTTP/1.1 ${err.status} ${STATUS_CODES[err.status] ?? ""}\r\n${lines.join("\r\n")}\r\n\r\n${body}`,
  );
}

export function createWsGateway(deps: SessionDeps): WsGateway {
  const { api, config, logger } = deps;
  const wss = new WebSocketServer({
    noServer: true,
    maxPayload: config.maxMessageBytes,
    // No compression: it costs memory per connection and lets a small frame inflate to a large one.
    perMessageDeflate: false,
    clientTracking: false,
    // No subprotocol is spoken (and none carries a token: see docs/decisions.md "WebSocket").
    handleProtocols: () => false,
  });
  const requestIds = new WeakMap<IncomingMessage, string>();
  wss.on("headers", (headers: string[], req: IncomingMessage) => {
    const id = requestIds.get(req);
    if (id !== undefined) headers.push(`X-Request-Id: ${id}`, `X-Weyl-Request-Id: ${id}`);
  });
  const sessions = new Set<Session>();
  /** Sockets between the upgrade request and their session (or refusal); close() destroys them. */
  const upgrading = new Set<Duplex>();
  const ended = { peak: 0, coalesced: 0, coalescedBytes: 0 };
  let slowReaderCloses = 0;
  let stopping = false;
  const tick = setInterval(() => {
    for (const s of sessions) s.heartbeat();
  }, config.pingIntervalMs);
  tick.unref();

  /** The checks before the upgrade, then the upgrade; refusals are problem documents. */
  async function admit(req: IncomingMessage, socket: Duplex, head: Buffer, requestId: string) {
    const url = new URL(req.url ?? "/", "http://gateway");
    if (url.pathname !== "/ws" && url.pathname !== "/ws/") {
      return refuse(
        socket,
        requestId,
        new AppError("not_found", `no WebSocket at ${shownValue(url.pathname)}`),
      );
    }
    if (stopping || !api.accepting()) return refuse(socket, requestId, shuttingDown());
    const named = URL_TOKEN_PARAMS.find((p) => url.searchParams.has(p));
    if (named !== undefined) {
      return refuse(
        socket,
        requestId,
        new AppError(
          "validation_error",
          'a token is never taken from the URL: send Authorization: Bearer, or a first message {"type":"auth","token":"..."}',
          { details: { field: named, constraint: "not_in_url" } },
        ),
      );
    }
    const origin = req.headers.origin;
    if (config.allowedOrigins !== undefined && origin !== undefined) {
      if (!config.allowedOrigins.includes(origin.toLowerCase())) {
        return refuse(
          socket,
          requestId,
          new AppError("forbidden", `origin ${shownValue(origin)} may not open a WebSocket here`, {
            details: { field: "origin" },
          }),
        );
      }
    }
    const header = req.headers.authorization;
    let initial: { principal: Principal; header: string } | undefined;
    if (header !== undefined) {
      try {
        initial = { principal: api.peekPrincipal?.(header) ?? (await api.authenticate(header)), header };
      } catch (err) {
        if (isAppError(err)) return refuse(socket, requestId, err);
        if (!isRedisUnavailable(err)) throw err;
        return refuse(
          socket,
          requestId,
          new AppError("unavailable", "the token could not be checked; retry shortly", {
            headers: { "retry-after": "1" },
          }),
        );
      }
    }
    if (socket.destroyed) return;
    // close() began while the token was checked: nothing would answer (or close) this socket.
    if (stopping) return refuse(socket, requestId, shuttingDown());
    requestIds.set(req, requestId);
    wss.handleUpgrade(req, socket, head, (ws) => {
      const session = startSession(
        { ws, socket, connId: requestId, ...(initial ? { initial } : {}) },
        { ...deps, onSlowReader: () => slowReaderCloses++ },
      );
      sessions.add(session);
      void session.ended.then(() => {
        const st = session.stats();
        ended.peak = Math.max(ended.peak, st.peakBufferedBytes);
        ended.coalesced += st.coalesced;
        ended.coalescedBytes += st.coalescedBytes;
        sessions.delete(session);
      });
    });
  }

  return {
    handleUpgrade(req, socket, head) {
      // Errors of a socket that goes away before (or while) it is upgraded are nobody's business.
      socket.on("error", () => undefined);
      const sent = req.headers["x-request-id"];
      const requestId = typeof sent === "string" && REQUEST_ID_RE.test(sent) ? sent : api.ids("request");
      upgrading.add(socket);
      admit(req, socket, head, requestId)
        .catch((err: unknown) => {
          logger.error({ err, requestId }, "websocket upgrade failed");
          refuse(socket, requestId, new AppError("internal_error", "internal error"));
        })
        .finally(() => upgrading.delete(socket));
    },

    stats() {
      let peak = ended.peak;
      let coalesced = ended.coalesced;
      let coalescedBytes = ended.coalescedBytes;
      let authenticating = 0;
      let jobs = 0;
      for (const s of sessions) {
        jobs += s.jobsInFlight;
        const st = s.stats();
        peak = Math.max(peak, st.peakBufferedBytes);
        coalesced += st.coalesced;
        coalescedBytes += st.coalescedBytes;
        if (!s.authenticated) authenticating++;
      }
      return {
        connections: sessions.size,
        authenticating,
        jobs_in_flight: jobs,
        peak_buffered_bytes: peak,
        coalesced,
        coalesced_bytes: coalescedBytes,
        slow_reader_closes: slowReaderCloses,
      };
    },

    async close() {
      stopping = true;
      clearInterval(tick);
      // (server.closeAllConnections() does not see sockets mid-upgrade.)
      for (const socket of upgrading) socket.destroy();
      const all = () => Promise.all([...sessions].map((s) => s.ended));
      for (const s of sessions) s.close(WS_CLOSE.shutdown, "server shutting down");
      await within(all(), 2_000);
      for (const s of sessions) s.terminate();
      await within(all(), 1_000);
      wss.close();
    },
  };
}
