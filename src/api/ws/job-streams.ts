// The jobs one WebSocket connection submits or follows: `generate` goes through the same submit as
// `POST /queue` (api/queue-submit.ts), `subscribe` follows a job of the caller, `cancel` is the
// cancel of `DELETE /jobs/{id}`; each followed job's events (api/job-follow.ts, as SSE gets them)
// become the protocol's messages. At most `maxJobs` are in flight (admitting or followed) at once.
import type { Logger } from "pino";
import { AppError, isAppError } from "../../core/errors.js";
import type { Principal } from "../auth.js";
import type { ApiDeps } from "../deps.js";
import type { ApiServices } from "../services.js";
import { isRedisUnavailable } from "../problem.js";
import { followJob, type FollowedEvent } from "../job-follow.js";
import { submitToQueue } from "../queue-submit.js";
import { cancelJobFor, readJobFor } from "../routes/jobs.js";
import type { SendQueue } from "./send-queue.js";

/** Thrown by the principal check when the connection was closed for its credential: nothing to answer. */
export class ConnectionClosed extends Error {
  constructor() {
    super("connection closed");
    this.name = "ConnectionClosed";
  }
}

export interface JobStreamsOptions {
  readonly api: ApiDeps;
  readonly services: Pick<ApiServices, "admission" | "limiter">;
  readonly queue: SendQueue;
  readonly maxJobs: number;
  readonly logger: Logger;
  /** The caller, checked again (a revoked key or an expired token closes the connection). */
  readonly principal: () => Promise<Principal>;
  /** Called whenever a job stops being in flight. */
  readonly onSettled: () => void;
}

export interface JobStreams {
  /** Jobs admitting or followed now. */
  readonly size: number;
  generate(id: string, body: Readonly<Record<string, unknown>>): void;
  subscribe(jobId: string, id: string | undefined): void;
  cancel(jobId: string, id: string | undefined): void;
  /** Stops following every job (the connection closed); the jobs themselves go on. */
  stopAll(): void;
}

/** One job in flight on the connection. */
interface Entry {
  /** Its number on the connection (the send queue coalesces per stream). */
  readonly stream: number;
  readonly clientId: string | undefined;
  jobId: string | undefined;
  readonly stop: AbortController;
}

/** The fields of the 202 body an `ack` carries. */
const ACK_FIELDS = ["status", "position", "eta_seconds", "created_at"] as const;

/**
 * The `error` message of a refusal: the HTTP problem's code, message and status, `retry_after` from
 * its `Retry-After`, and its `details`. Redis outages are `unavailable`; anything else is logged and
 * sent as a bare `internal_error`.
 */
export function errorMessage(
  err: unknown,
  logger: Logger,
  id?: string,
  jobId?: string,
): Record<string, unknown> {
  let e: AppError;
  if (isAppError(err)) e = err;
  else if (isRedisUnavailable(err)) {
    e = new AppError("unavailable", "the job store is unreachable; retry shortly", {
      headers: { "retry-after": "1" },
    });
  } else {
    logger.error({ err }, "websocket message failed");
    e = new AppError("internal_error", "internal error");
  }
  const retry = Number(e.headers?.["retry-after"]);
  return {
    type: "error",
    ...(id === undefined ? {} : { id }),
    ...(jobId === undefined ? {} : { job_id: jobId }),
    code: e.code,
    message: e.message,
    status: e.status,
    ...(Number.isFinite(retry) ? { retry_after: retry } : {}),
    ...(e.details ? { details: e.details } : {}),
  };
}

export function createJobStreams(o: JobStreamsOptions): JobStreams {
  const entries = new Set<Entry>();
  const byClientId = new Map<string, Entry>();
  let streams = 0;
  const q = o.queue;

  const reply = (err: unknown, id?: string, jobId?: string) => {
    if (!(err instanceof ConnectionClosed)) q.now(errorMessage(err, o.logger, id, jobId));
  };

  /** A new entry, or undefined (and the refusal sent) when the connection is at its limit or the id is taken. */
  const begin = (clientId: string | undefined): Entry | undefined => {
    if (entries.size >= o.maxJobs) {
      reply(
        new AppError(
          "queue_full",
          `this connection has ${o.maxJobs} jobs in flight, its limit; wait for one to end`,
          {
            details: { scope: "connection", limit: o.maxJobs },
          },
        ),
        clientId,
      );
      return undefined;
    }
    if (clientId !== undefined && byClientId.has(clientId)) {
      reply(
        new AppError("conflict", `id ${JSON.stringify(clientId)} names a job in flight on this connection`, {
          details: { field: "id" },
        }),
        clientId,
      );
      return undefined;
    }
    const entry: Entry = { stream: ++streams, clientId, jobId: undefined, stop: new AbortController() };
    entries.add(entry);
    if (clientId !== undefined) byClientId.set(clientId, entry);
    return entry;
  };

  const end = (entry: Entry) => {
    entries.delete(entry);
    if (entry.clientId !== undefined && byClientId.get(entry.clientId) === entry)
      byClientId.delete(entry.clientId);
    q.forget(entry.stream);
    o.onSettled();
  };

  /** A followed job's event as the protocol's message; intermediates may be coalesced. */
  const emit = (entry: Entry, ev: FollowedEvent) => {
    const base = { ...(entry.clientId === undefined ? {} : { id: entry.clientId }), job_id: entry.jobId };
    switch (ev.event) {
      case "started":
        q.now({ type: "started", ...base, ...ev.data });
        return;
      case "progress":
        q.latest(entry.stream, "progress", { type: "progress", ...base, ...ev.data });
        return;
      case "preview":
        // API.md §7: preview frames are `data:image/...;base64,` URIs.
        q.latest(entry.stream, "frame", { type: "frame", ...base, frame: ev.data["frame"] });
        return;
      case "position":
        q.latest(entry.stream, "position", { type: "position", ...base, ...ev.data });
        return;
      case "complete":
      case "error":
        // Its last message: what still waits of this job is stale now.
        q.forget(entry.stream);
        q.now({ type: ev.event, ...base, ...ev.data });
        return;
    }
  };

  /** Follows the entry's job from its first event to its last (or until the connection closes). */
  const follow = async (entry: Entry, jobId: string) => {
    entry.jobId = jobId;
    try {
      await followJob(o.api, jobId, 0, entry.stop.signal, (ev) => emit(entry, ev));
    } catch (err) {
      if (entry.stop.signal.aborted) return;
      o.logger.warn({ err, jobId }, "websocket lost a job's events");
      // The job goes on; only this view of it ended.
      q.forget(entry.stream);
      q.now({
        type: "error",
        ...(entry.clientId === undefined ? {} : { id: entry.clientId }),
        job_id: jobId,
        code: isRedisUnavailable(err) ? "unavailable" : "internal_error",
        message: "the job's events could not be read; it goes on: subscribe again, or GET /jobs/{id}",
        retriable: true,
      });
    }
  };

  return {
    get size() {
      return entries.size;
    },

    generate(id, body) {
      const entry = begin(id);
      if (!entry) return;
      void (async () => {
        let jobId: string | undefined;
        try {
          const principal = await o.principal();
          const submitted = await submitToQueue(o.api, o.services.admission, o.services.limiter, {
            principal,
            body,
          });
          jobId = String(submitted.body["id"]);
          const ack: Record<string, unknown> = { type: "ack", id, job_id: jobId };
          for (const f of ACK_FIELDS) if (submitted.body[f] !== undefined) ack[f] = submitted.body[f];
          if (submitted.replayed) ack["replayed"] = true;
          q.now(ack);
          await follow(entry, jobId);
        } catch (err) {
          reply(err, id, jobId);
        } finally {
          end(entry);
        }
      })();
    },

    subscribe(jobId, id) {
      const entry = begin(id);
      if (!entry) return;
      void (async () => {
        try {
          const principal = await o.principal();
          // Following a job is a read, as opening its SSE stream is (once per subscription).
          await o.services.limiter.take("reads", principal);
          await readJobFor(o.api, principal, jobId);
          await follow(entry, jobId);
        } catch (err) {
          reply(err, id, jobId);
        } finally {
          end(entry);
        }
      })();
    },

    cancel(jobId, id) {
      void (async () => {
        try {
          // Confirmed by the job's own `error {code: "cancelled"}` where it is followed.
          await cancelJobFor(o.api, await o.principal(), jobId);
        } catch (err) {
          reply(err, id, jobId);
        }
      })();
    },

    stopAll() {
      for (const entry of entries) entry.stop.abort();
    },
  };
}
