// One WebSocket connection from upgrade to close: authentication (a header token at the upgrade, or
// a first `auth` message within WS_AUTH_TIMEOUT_MS), the tenant's connection lease, the messages in
// order, the message rate, idle and heartbeat, and the cleanup that frees every listener when it
// closes (its jobs go on: they are ordinary queued jobs).
import type { Duplex } from "node:stream";
import type { Logger } from "pino";
import type { RawData, WebSocket } from "ws";
import { AppError, isAppError } from "../../core/errors.js";
import type { Principal } from "../auth.js";
import type { ApiDeps } from "../deps.js";
import type { ApiServices } from "../services.js";
import type { WsLeases } from "../../queues/ws-leases.js";
import { parseJsonMessage, readClientMessage, clientIdOf, type ClientMessage } from "./messages.js";
import { createSendQueue, type SendQueue, type SendQueueStats } from "./send-queue.js";
import { ConnectionClosed, createJobStreams, errorMessage } from "./job-streams.js";

/** The bounds of the WebSocket (README "WebSocket (/ws)"; each from a WS_* variable). */
export interface WsConfig {
  readonly authTimeoutMs: number;
  readonly idleTimeoutMs: number;
  readonly pingIntervalMs: number;
  readonly maxConnectionsPerTenant: number;
  readonly maxJobsPerConnection: number;
  readonly maxMessageBytes: number;
  readonly messagesPerS: number;
  readonly highWaterBytes: number;
  readonly maxBufferedBytes: number;
  readonly slowReaderMs: number;
  /** Origins a browser may connect from; undefined: any. */
  readonly allowedOrigins?: readonly string[] | undefined;
}

/** Close codes of the protocol (RFC 6455 §7.4; 4000-4999 are ours). */
export const WS_CLOSE = {
  shutdown: 1001,
  binary: 1003,
  policy: 1008,
  tooBig: 1009,
  tryLater: 1013,
  idle: 4000,
  unauthorized: 4401,
  slowReader: 4408,
  tooManyConnections: 4429,
} as const;

/**
 * How long a closing connection has to finish the closing handshake before it is cut off: enough for
 * a reader that resumes to drain what waits and read the close reason (ws's own default is 30 s).
 */
const CLOSE_GRACE_MS = 5_000;

/** Bytes a connection may send before it is open (authenticated, lease held; an `auth` is far smaller). */
export const PRE_AUTH_MAX_BYTES = 16 * 1024;

/**
 * The messages waiting behind the one being handled (which may await Redis or a JWKS fetch): at
 * most 2 × WS_MAX_MESSAGE_BYTES of payload and this many messages (or 2 × WS_MESSAGES_PER_S), else
 * the connection is closed 1008.
 */
export const MAX_WAITING_MESSAGES = 64;

export interface SessionDeps {
  readonly api: ApiDeps;
  readonly services: Pick<ApiServices, "admission" | "limiter">;
  readonly leases: WsLeases;
  readonly config: WsConfig;
  readonly logger: Logger;
  /** Called when a connection is closed as a slow reader (the gateway counts them). */
  readonly onSlowReader?: () => void;
}

export interface Session {
  readonly connId: string;
  readonly authenticated: boolean;
  /** Jobs the connection is admitting or following now. */
  readonly jobsInFlight: number;
  /** The gateway's tick: drops a peer that missed the last ping, pings, renews, checks the token. */
  heartbeat(): void;
  close(code: number, reason: string): void;
  /** Cuts the connection off at once (no closing handshake). */
  terminate(): void;
  stats(): SendQueueStats;
  /** Resolves when the connection has closed and its lease is given back. */
  readonly ended: Promise<void>;
}

export interface SessionStart {
  readonly ws: WebSocket;
  /** The upgraded socket (its bytes are counted until the connection authenticates). */
  readonly socket: Duplex;
  readonly connId: string;
  /** The credential of an `Authorization` header checked at the upgrade. */
  readonly initial?: { readonly principal: Principal; readonly header: string };
}

const isUnauthorized = (err: unknown) => isAppError(err) && err.code === "unauthorized";

export function startSession(s: SessionStart, deps: SessionDeps): Session {
  const { ws, connId } = s;
  const { config, api, logger } = deps;
  const clock = api.clock;
  let state: "auth" | "lease" | "open" | "closed" = "auth";
  let principal: Principal | undefined;
  let header = "";
  /** A lease call went out: it may have landed even if it failed or timed out, so it is released. */
  let leaseTried = false;
  let leaseWork: Promise<unknown> = Promise.resolve();
  let closing = false;
  let alive = true;
  let lastMessageAt = clock();
  let tokens = config.messagesPerS;
  let refilledAt = clock();
  let preAuthBytes = 0;
  let chain: Promise<unknown> = Promise.resolve();
  let waitingBytes = 0;
  let waitingCount = 0;
  const maxWaitingBytes = 2 * config.maxMessageBytes;
  const maxWaiting = Math.max(MAX_WAITING_MESSAGES, 2 * config.messagesPerS);
  let idleTimer: NodeJS.Timeout | undefined;
  let forceTimer: NodeJS.Timeout | undefined;
  let authTimer: NodeJS.Timeout | undefined;
  let endedResolve: () => void = () => undefined;
  const ended = new Promise<void>((r) => (endedResolve = r));
  const leaseMs = Math.max(1_000, 3 * config.pingIntervalMs);
  /** (A function: the state changes in event handlers while a call awaits.) */
  const isClosed = () => state === "closed";

  const queue: SendQueue = createSendQueue({
    socket: ws,
    highWaterBytes: config.highWaterBytes,
    maxBufferedBytes: config.maxBufferedBytes,
    slowReaderMs: config.slowReaderMs,
    onSlowReader: () => {
      logger.info({ connId, buffered: ws.bufferedAmount }, "websocket slow reader closed");
      deps.onSlowReader?.();
      close(
        WS_CLOSE.slowReader,
        `slow reader: over ${config.maxBufferedBytes} bytes unread for ${config.slowReaderMs} ms`,
      );
    },
  });

  function close(code: number, reason: string) {
    if (state === "closed" || closing) return;
    closing = true;
    // RFC 6455 §5.5: a close reason fits in 123 bytes (ws throws beyond).
    ws.close(code, Buffer.from(reason).subarray(0, 123).toString());
    // A peer that does not answer the close (or cannot: a slow reader) is cut off.
    forceTimer = setTimeout(() => ws.terminate(), CLOSE_GRACE_MS);
  }

  /** The caller, verified again (cached by the authenticator); a refused credential closes 4401. */
  async function current(): Promise<Principal> {
    try {
      const p = api.peekPrincipal?.(header) ?? (await api.authenticate(header));
      principal = p;
      return p;
    } catch (err) {
      if (!isUnauthorized(err)) throw err;
      close(WS_CLOSE.unauthorized, "the token is no longer valid");
      throw new ConnectionClosed();
    }
  }

  const jobs = createJobStreams({
    api,
    services: deps.services,
    queue,
    maxJobs: config.maxJobsPerConnection,
    logger,
    principal: current,
    onSettled: () => armIdle(),
  });

  /** Closes the connection once it has had no job and no message for WS_IDLE_TIMEOUT_MS. */
  function armIdle() {
    if (state !== "open" || jobs.size > 0 || idleTimer !== undefined) return;
    const check = () => {
      idleTimer = undefined;
      if (state !== "open" || jobs.size > 0) return;
      const left = lastMessageAt + config.idleTimeoutMs - clock();
      if (left > 0) idleTimer = setTimeout(check, left);
      else close(WS_CLOSE.idle, `idle: no job and no message for ${config.idleTimeoutMs} ms`);
    };
    idleTimer = setTimeout(check, Math.max(0, lastMessageAt + config.idleTimeoutMs - clock()));
  }

  /**
   * Takes (or renews) the tenant's connection lease; false when refused (the connection is closing)
   * or when the connection closed meanwhile. Lease calls run one at a time, the release last.
   */
  function holdLease(who: Principal): Promise<boolean> {
    const limit = config.maxConnectionsPerTenant;
    const call = leaseWork.then(async () => {
      if (state === "closed") return false;
      // released after the close, whatever happened meanwhile (release is idempotent)
      leaseTried = true;
      const res = await deps.leases.hold(who.customerId, connId, clock(), leaseMs, limit);
      if (isClosed()) return false;
      if (res.held) return true;
      close(WS_CLOSE.tooManyConnections, `too many connections: this customer has ${limit} open, its limit`);
      return false;
    });
    leaseWork = call.catch(() => undefined);
    return call;
  }

  /** A verified credential: the lease, then the connection serves messages. */
  async function open(who: Principal, authHeader: string) {
    if (closing) return;
    principal = who;
    header = authHeader;
    state = "lease";
    clearTimeout(authTimer);
    try {
      if (!(await holdLease(who))) return;
    } catch (err) {
      logger.warn({ err, connId }, "websocket lease not taken");
      close(WS_CLOSE.tryLater, "the connection limit could not be checked; retry shortly");
      return;
    }
    if (isClosed() || closing) return;
    state = "open";
    s.socket.off("data", countPreAuth);
    armIdle();
  }

  /** `auth`: the first one authenticates the connection; a later one refreshes its token. */
  async function authenticate(token: string) {
    const authHeader = `Bearer ${token}`;
    let who: Principal;
    try {
      who = await api.authenticate(authHeader);
    } catch (err) {
      if (isUnauthorized(err)) close(WS_CLOSE.unauthorized, "invalid or expired token");
      else close(WS_CLOSE.tryLater, "the token could not be checked; retry shortly");
      return;
    }
    if (state === "auth") return open(who, authHeader);
    if (who.customerId !== principal?.customerId) {
      close(WS_CLOSE.unauthorized, "a connection serves one customer: open another for this token");
      return;
    }
    principal = who;
    header = authHeader;
  }

  async function handle(data: Uint8Array) {
    if (state === "closed" || closing) return;
    let msg: ClientMessage;
    let raw: Record<string, unknown> | undefined;
    try {
      raw = parseJsonMessage(data);
      msg = readClientMessage(raw);
    } catch (err) {
      if (state === "auth") close(WS_CLOSE.unauthorized, 'authenticate first: {"type":"auth","token":"..."}');
      else queue.now(errorMessage(err, logger, raw && clientIdOf(raw)));
      return;
    }
    if (state === "auth" && msg.type !== "auth") {
      close(WS_CLOSE.unauthorized, 'authenticate first: {"type":"auth","token":"..."}');
      return;
    }
    switch (msg.type) {
      case "auth":
        return authenticate(msg.token);
      case "generate":
        return jobs.generate(msg.id, msg.body);
      case "subscribe":
        return jobs.subscribe(msg.jobId, msg.id);
      case "cancel":
        return jobs.cancel(msg.jobId, msg.id);
      case "ping":
        queue.now({ type: "pong", ...(msg.id === undefined ? {} : { id: msg.id }) });
    }
  }

  /** One unit of the connection's message rate (a token bucket of WS_MESSAGES_PER_S). */
  function takeMessage(): boolean {
    const now = clock();
    tokens = Math.min(config.messagesPerS, tokens + ((now - refilledAt) * config.messagesPerS) / 1000);
    refilledAt = now;
    if (tokens < 1) return false;
    tokens -= 1;
    return true;
  }

  const rateLimited = errorMessage(
    new AppError("rate_limited", `more than ${config.messagesPerS} messages per second on this connection`, {
      headers: { "retry-after": "1" },
    }),
    logger,
  );

  function countPreAuth(chunk: Buffer) {
    preAuthBytes += chunk.length;
    if (preAuthBytes > PRE_AUTH_MAX_BYTES && state !== "open") {
      close(
        WS_CLOSE.tooBig,
        `authenticate first with a small auth message (at most ${PRE_AUTH_MAX_BYTES} bytes)`,
      );
    }
  }

  const replyRateLimited = () => queue.now(rateLimited);
  /** (Its own function: the closure holds this message's bytes, nothing else.) */
  const handleLater = (data: Buffer) => () => handle(data);

  /** Runs `work` after the messages before it; closes 1008 past the bound of what may wait. */
  function enqueue(work: () => unknown, bytes: number) {
    if (waitingCount >= maxWaiting || waitingBytes + bytes > maxWaitingBytes) {
      close(WS_CLOSE.policy, `too many messages waiting: send the next once earlier ones are answered`);
      return;
    }
    waitingCount++;
    waitingBytes += bytes;
    chain = chain
      .then(() => {
        waitingCount--;
        waitingBytes -= bytes;
        return work();
      })
      .catch((err: unknown) => logger.warn({ err, connId }, "websocket message failed"));
  }

  ws.on("message", (data: RawData, isBinary: boolean) => {
    if (state === "closed" || closing) return;
    if (isBinary) {
      close(WS_CLOSE.binary, "binary messages are not accepted: send JSON text");
      return;
    }
    lastMessageAt = clock();
    // Answered in order (after the messages before it); a message over the rate (charged in every
    // state) is never parsed, and its bytes are not kept.
    if (!takeMessage()) return enqueue(replyRateLimited, 0);
    const buf = Array.isArray(data) ? Buffer.concat(data) : Buffer.isBuffer(data) ? data : Buffer.from(data);
    enqueue(handleLater(buf), buf.length);
  });
  ws.on("pong", () => {
    alive = true;
  });
  ws.on("error", (err) => logger.debug({ err, connId }, "websocket error"));
  ws.on("close", (code: number) => {
    state = "closed";
    clearTimeout(idleTimer);
    clearTimeout(forceTimer);
    clearTimeout(authTimer);
    s.socket.off("data", countPreAuth);
    queue.close();
    jobs.stopAll();
    logger.debug({ connId, code }, "websocket closed");
    // After the lease calls in flight: a lease taken meanwhile is given back too.
    void leaseWork
      .then(async () => {
        if (leaseTried && principal !== undefined) await deps.leases.release(principal.customerId, connId);
      })
      .catch((err: unknown) => logger.debug({ err, connId }, "websocket lease not released; it lapses"))
      .finally(endedResolve);
  });

  if (s.initial) chain = open(s.initial.principal, s.initial.header);
  else {
    s.socket.on("data", countPreAuth);
    authTimer = setTimeout(() => {
      if (state === "auth") close(WS_CLOSE.unauthorized, `no auth message within ${config.authTimeoutMs} ms`);
    }, config.authTimeoutMs);
  }

  return {
    connId,
    get authenticated() {
      return state === "open";
    },
    get jobsInFlight() {
      return jobs.size;
    },
    heartbeat() {
      if (state === "closed") return;
      if (!alive) {
        ws.terminate();
        return;
      }
      alive = false;
      ws.ping();
      if (state !== "open" || closing || principal === undefined) return;
      queue.flush();
      const who = principal;
      current()
        .then(() => holdLease(who))
        .catch((err: unknown) => {
          if (!(err instanceof ConnectionClosed)) logger.debug({ err, connId }, "websocket renewal failed");
        });
    },
    close,
    terminate: () => ws.terminate(),
    stats: () => queue.stats(),
    ended,
  };
}
