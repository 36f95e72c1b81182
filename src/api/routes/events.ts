// GET /jobs/{id}/events: Server-Sent Events. Replays the job's stored events from the start (or
// after Last-Event-ID), then streams live ones, re-reading the position of a queued job while it
// changes. Ids: stored events have integer ids; live position updates get `<last stored id>.<n>`,
// so a resume after either kind continues after the last stored event without loss or repeats.
// The stream ends after the terminal event, or at once when the job has already finished
// (api/job-follow.ts follows the job; this route adds the SSE framing and heartbeats).
import { Hono } from "hono";
import { streamSSE, type SSEStreamingApi } from "hono/streaming";
import type { ApiEnv } from "../context.js";
import type { ApiDeps } from "../deps.js";
import { isRedisUnavailable } from "../problem.js";
import { followJob } from "../job-follow.js";
import { readOwnJob } from "./jobs.js";

/**
 * The stored event id to resume after: the integer part of `N` or `N.k` (a live position id), or 0
 * (replay everything) for anything else, including integers beyond 2^53 that Redis would refuse.
 */
export function parseLastEventId(raw: string | undefined): number {
  const m = raw === undefined ? null : /^(\d{1,16})(?:\.\d{1,16})?$/.exec(raw.trim());
  if (!m) return 0;
  const n = Number(m[1]);
  return Number.isSafeInteger(n) ? n : 0;
}

/**
 * A failure inside the stream, with a message safe to send: Hono writes the message of an error that
 * escapes the stream as a final `error` event, so it carries our `{code, message, retriable}` JSON
 * rather than the internal error's text (which goes to the log).
 */
class StreamFailure extends Error {
  constructor(cause: unknown) {
    const unavailable = isRedisUnavailable(cause);
    super(
      JSON.stringify({
        code: unavailable ? "unavailable" : "internal_error",
        message: unavailable ? "the job store is unreachable; reconnect shortly" : "internal error",
        retriable: true,
      }),
      { cause },
    );
    this.name = "StreamFailure";
  }
}

export function eventRoutes(deps: ApiDeps) {
  const app = new Hono<ApiEnv>();

  app.get("/jobs/:id/events", async (c) => {
    const id = c.req.param("id");
    await readOwnJob(deps, c, id);
    const lastSeq = parseLastEventId(c.req.header("last-event-id") ?? c.req.query("last_event_id"));
    c.header("cache-control", "no-cache");
    c.header("x-accel-buffering", "no");
    // HEAD: the headers of the stream without opening one (nobody would read or close it).
    if (c.req.method === "HEAD") return c.body(null, 200, { "content-type": "text/event-stream" });

    const follow = async (stream: SSEStreamingApi) => {
      const stop = new AbortController();
      stream.onAbort(() => stop.abort());
      const heartbeat = setInterval(() => {
        stream.write(": heartbeat\n\n").catch(() => undefined);
      }, deps.config.heartbeatMs);
      try {
        await followJob(deps, id, lastSeq, stop.signal, (ev) =>
          stream.writeSSE({ id: ev.id, event: ev.event, data: JSON.stringify(ev.data) }),
        );
      } catch (err) {
        throw new StreamFailure(err);
      } finally {
        clearInterval(heartbeat);
      }
    };

    return streamSSE(c, follow, async (err) => {
      deps.logger.warn({ err: err.cause ?? err, jobId: id }, "event stream failed");
    });
  });

  return app;
}
