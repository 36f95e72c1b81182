// The one place where errors become RFC 9457 problem documents with the seed's envelope fields.
import type { Context } from "hono";
import type { Logger } from "pino";
import { AppError, TITLE_OF, isAppError, type ErrorCode } from "../core/errors.js";
import type { Principal } from "./auth.js";
import { requestIdHeaders, stampedResponse } from "./respond.js";

export const PROBLEM_TYPE_BASE = "https://render-gateway.dev/errors/";

export function problemBody(
  code: ErrorCode,
  status: number,
  detail: string,
  requestId: string,
  details?: Readonly<Record<string, unknown>>,
) {
  return {
    type: `${PROBLEM_TYPE_BASE}${code}`,
    title: TITLE_OF[code],
    status,
    detail,
    instance: requestId,
    error: code,
    message: detail,
    request_id: requestId,
    ...(details ? { details } : {}),
  };
}

/** The error code a problem response carries, for the request's metrics and log line. */
const PROBLEM_CODE = Symbol("problem code");

/** `extra`: headers of the request's context (the error's own headers win over them). */
export function problemResponse(
  err: AppError,
  requestId: string,
  extra: Readonly<Record<string, string>> = {},
): Response {
  const headers: Record<string, string> = {
    "content-type": "application/problem+json",
    ...requestIdHeaders(requestId),
  };
  for (const [k, v] of Object.entries(extra)) headers[k.toLowerCase()] = v;
  for (const [k, v] of Object.entries(err.headers ?? {})) headers[k.toLowerCase()] = v;
  const res = stampedResponse(
    JSON.stringify(problemBody(err.code, err.status, err.message, requestId, err.details)),
    err.status,
    headers,
  );
  (res as unknown as Record<symbol, ErrorCode>)[PROBLEM_CODE] = err.code;
  return res;
}

/** The error code of a response made by {@link problemResponse}; undefined for any other. */
export function problemCodeOf(res: Response): ErrorCode | undefined {
  return (res as unknown as Record<symbol, ErrorCode | undefined>)[PROBLEM_CODE];
}

/**
 * Redis error replies that mean "this server cannot take the command now" rather than "the command is
 * wrong": out of memory, a failed snapshot (MISCONF), a replica (READONLY), a busy script (BUSY, not
 * BUSYKEY/BUSYGROUP), loading the dataset (LOADING), cluster and replication states — with a Cluster
 * also a redirection ioredis handed back instead of following (MOVED, ASK: in a pipeline whose
 * commands failed differently while a slot moved; nothing ran, the client's slot table is being read
 * again and a resend goes to the new node). ioredis's ReplyError message starts with the code.
 */
const UNAVAILABLE_REPLY_RE =
  /^(?:OOM|MISCONF|READONLY|BUSY|LOADING|CLUSTERDOWN|TRYAGAIN|MASTERDOWN|NOREPLICAS|NOMASTERLINK|MOVED|ASK)\b/;

/**
 * Redis error replies that refuse a write while reads still work: out of memory (`maxmemory` with
 * noeviction), a failed snapshot (MISCONF), a replica (READONLY), too few replicas (NOREPLICAS).
 */
const WRITE_REFUSED_REPLY_RE = /^(?:OOM|MISCONF|READONLY|NOREPLICAS)\b/;

/**
 * True when Redis answered but refused a write it would take in another state: what needs no write
 * (a read) can go on. A subset of {@link isRedisUnavailable}.
 */
export function isRedisWriteRefused(err: unknown): boolean {
  return err instanceof Error && WRITE_REFUSED_REPLY_RE.test(err.message);
}

/**
 * True when the error means Redis cannot serve the request now: not reachable (connection closed,
 * offline, timeout) or answering with one of the "unavailable" error replies above — also inside a
 * MULTI, which Redis then discards as a whole (`EXECABORT`; ioredis keeps the refusals in
 * `previousErrors`), as a full Redis does with every write of a transaction.
 */
export function isRedisUnavailable(err: unknown): boolean {
  if (!(err instanceof Error)) return false;
  const msg = err.message;
  const previous = (err as { previousErrors?: unknown }).previousErrors;
  if (msg.startsWith("EXECABORT") && Array.isArray(previous)) {
    return previous.some((e) => e instanceof Error && UNAVAILABLE_REPLY_RE.test(e.message));
  }
  return (
    UNAVAILABLE_REPLY_RE.test(msg) ||
    msg.includes("Stream isn't writeable") ||
    msg.includes("enableOfflineQueue") ||
    msg.includes("Connection is closed") ||
    msg.includes("Command timed out") ||
    msg.includes("Reached the max retries per request limit") ||
    // A Cluster with a node gone, or none reachable (infra/redis.ts clusterConnectionOptions).
    msg.startsWith("Too many Cluster redirections") ||
    msg.includes("Failed to refresh slots cache") ||
    msg.startsWith("Cluster is disconnect") ||
    msg.includes("None of startup nodes is available") ||
    /ECONNREFUSED|ECONNRESET|EPIPE|ETIMEDOUT/.test(msg)
  );
}

/** Who made the request, for a log line: the customer and, for an API key, its prefix — never a token. */
export function callerOf(c: Context): { customer?: string; key_prefix?: string } {
  const who = c.get("principal" as never) as Principal | undefined;
  if (who === undefined) return {};
  return { customer: who.customerId, ...(who.keyPrefix === undefined ? {} : { key_prefix: who.keyPrefix }) };
}

/**
 * Hono `onError`: AppErrors as themselves, Redis outages as fast 503s, the rest as a bare 500; each
 * with the request's `problemHeaders` (set by a route that must name something in every answer).
 */
export function createErrorHandler(logger: Logger) {
  return function onError(err: Error, c: Context): Response {
    const requestId = (c.get("requestId" as never) as string | undefined) ?? "req_unknown";
    const extra = (c.get("problemHeaders" as never) as Record<string, string> | undefined) ?? {};
    if (isAppError(err)) return problemResponse(err, requestId, extra);
    if (isRedisUnavailable(err)) {
      logger.warn({ requestId, ...callerOf(c), err: err.message }, "redis unavailable");
      return problemResponse(
        new AppError("unavailable", "the job store is unreachable; retry shortly", {
          headers: { "retry-after": "1" },
        }),
        requestId,
        extra,
      );
    }
    logger.error({ requestId, ...callerOf(c), err }, "unhandled error");
    return problemResponse(new AppError("internal_error", "internal error"), requestId, extra);
  };
}
