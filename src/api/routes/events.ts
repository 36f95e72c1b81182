// GET /jobs/{id}/events: Server-Sent Events. Replays the job's stored events from the start (or
// after Last-Event-ID), then streams live ones, re-reading the position of a queued job while it
// changes. Ids: stored events have integer ids; live position updates get `<last stored id>.<n>`,
// so a resume after either kind continues after the last stored event without loss or repeats.
// The stream ends after the terminal event, or at once when the job has already finished.
import { Hono } from "hono";
import { streamSSE, type SSEStreamingApi } from "hono/streaming";
import { TERMINAL } from "../../core/job.js";
import type { ApiEnv } from "../context.js";
import type { ApiDeps } from "../deps.js";
import { isRedisUnavailable } from "../problem.js";
import { etaSecondsOf } from "../present.js";
import { createWakeup } from "../wakeup.js";
import { readOwnJob } from "./jobs.js";

/** Stored events that end a stream (a cancellation is stored as an `error` event). */
const TERMINAL_EVENTS: ReadonlySet<string> = new Set(["complete", "error"]);
/** Stored events read per Redis call. */
const BATCH = 1000;

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
    let lastSeq = parseLastEventId(c.req.header("last-event-id") ?? c.req.query("last_event_id"));
    c.header("cache-control", "no-cache");
    c.header("x-accel-buffering", "no");
    // HEAD: the headers of the stream without opening one (nobody would read or close it).
    if (c.req.method === "HEAD") return c.body(null, 200, { "content-type": "text/event-stream" });

    const follow = async (stream: SSEStreamingApi) => {
      let done = false;
      let lastPosition = -1;
      let positionTick = 0;
      const wakeup = createWakeup();
      const off = deps.hub.on(id, wakeup.signal);
      stream.onAbort(() => {
        done = true;
        wakeup.signal();
      });
      const poll = setInterval(wakeup.signal, deps.config.positionPollMs);
      const heartbeat = setInterval(() => {
        stream.write(": heartbeat\n\n").catch(() => undefined);
      }, deps.config.heartbeatMs);

      /** Sends every stored event after `lastSeq`; sets `done` after a terminal one. */
      const sendStored = async () => {
        for (;;) {
          const events = await deps.store.events(id, lastSeq, BATCH);
          for (const ev of events) {
            lastSeq = ev.seq;
            await stream.writeSSE({
              id: String(ev.seq),
              event: ev.event,
              data: JSON.stringify(deps.present.eventData(ev.event, ev.data)),
            });
            if (TERMINAL_EVENTS.has(ev.event)) done = true;
          }
          if (done || events.length < BATCH) return;
        }
      };

      try {
        while (!done) {
          await sendStored();
          if (done) break;
          const now = await deps.store.read(id);
          if (!now) {
            // The job was removed (retention or admin): say so and end, never poll forever.
            await stream.writeSSE({
              id: `${lastSeq}.${++positionTick}`,
              event: "error",
              data: JSON.stringify({
                code: "job_not_found",
                message: "the job no longer exists",
                retriable: false,
              }),
            });
            break;
          }
          if (TERMINAL.has(now.job.status)) {
            // Finished (a resume after its last event, or events stored since the read above):
            // send what is left, then end. No further event will ever come.
            await sendStored();
            break;
          }
          if (now.job.status === "queued" && now.position >= 0 && now.position !== lastPosition) {
            lastPosition = now.position;
            const eta = await etaSecondsOf(deps.capacity, deps.clock, now.job, now.position);
            await stream.writeSSE({
              id: `${lastSeq}.${++positionTick}`,
              event: "position",
              data: JSON.stringify({
                position: now.position,
                ...(eta === undefined ? {} : { eta_seconds: eta }),
                ...(now.held ? { held: "concurrency_limit" } : {}),
              }),
            });
          }
          await wakeup.wait();
        }
      } catch (err) {
        throw new StreamFailure(err);
      } finally {
        off();
        clearInterval(poll);
        clearInterval(heartbeat);
      }
    };

    return streamSSE(c, follow, async (err) => {
      deps.logger.warn({ err: err.cause ?? err, jobId: id }, "event stream failed");
    });
  });

  return app;
}
