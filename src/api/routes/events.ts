// GET /jobs/{id}/events: Server-Sent Events. Replays the job's stored events from the start (or
// after Last-Event-ID), then streams live ones, re-reading the position of a queued job while it
// changes. Ids: stored events have integer ids; live position updates get `<last stored id>.<n>`,
// so a resume after either kind continues after the last stored event without loss or repeats.
import { Hono } from "hono";
import { streamSSE, type SSEStreamingApi } from "hono/streaming";
import type { ApiEnv } from "../context.js";
import type { ApiDeps } from "../deps.js";
import { readOwnJob } from "./jobs.js";
import { queuedEtaSeconds } from "../../core/eta.js";

const TERMINAL_EVENTS = new Set(["complete", "error"]);

function parseLastEventId(raw: string | undefined): number {
  if (!raw) return 0;
  const n = Number.parseInt(raw, 10);
  return Number.isFinite(n) && n > 0 ? n : 0;
}

export function eventRoutes(deps: ApiDeps) {
  const app = new Hono<ApiEnv>();

  app.get("/jobs/:id/events", async (c) => {
    const id = c.req.param("id");
    const first = await readOwnJob(deps, c, id);
    let lastSeq = parseLastEventId(c.req.header("last-event-id") ?? c.req.query("last_event_id"));
    c.header("cache-control", "no-cache");
    c.header("x-accel-buffering", "no");

    return streamSSE(c, async (stream: SSEStreamingApi) => {
      let done = false;
      let pending = false;
      let wake: (() => void) | undefined;
      let lastPosition = -2;
      let positionTick = 0;
      const signal = () => {
        const w = wake;
        wake = undefined;
        if (w) w();
        else pending = true;
      };
      const off = deps.hub.on(id, signal);
      stream.onAbort(() => {
        done = true;
        signal();
      });
      const timers = [setInterval(signal, deps.config.positionPollMs)];
      const heartbeat = setInterval(() => {
        stream.write(": heartbeat\n\n").catch(() => undefined);
      }, deps.config.heartbeatMs);
      timers.push(heartbeat);

      try {
        let status = first.job.status;
        while (!done) {
          const events = await deps.store.events(id, lastSeq);
          for (const ev of events) {
            lastSeq = ev.seq;
            if (ev.event === "position") {
              lastPosition = Number(ev.data.position);
              positionTick = 0;
            }
            await stream.writeSSE({
              id: String(ev.seq),
              event: ev.event,
              data: JSON.stringify(deps.present.eventData(ev.event, ev.data)),
            });
            if (TERMINAL_EVENTS.has(ev.event)) done = true;
          }
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
          status = now.job.status;
          if (status === "queued" && now.position >= 0 && now.position !== lastPosition) {
            lastPosition = now.position;
            const familyModel = `${now.job.family}/${now.job.model}`;
            const [, constraint] = now.job.route.split("@");
            const { capacity: cap, serviceMs: svc } = (await deps.capacity.snapshot()).route(
              familyModel,
              constraint,
            );
            const eta = queuedEtaSeconds(now.position, cap, svc);
            await stream.writeSSE({
              id: `${lastSeq}.${++positionTick}`,
              event: "position",
              data: JSON.stringify({
                position: now.position,
                ...(eta === undefined ? {} : { eta_seconds: eta }),
              }),
            });
          }
          if (done) break;
          if (!pending) {
            await new Promise<void>((resolve) => {
              wake = resolve;
            });
          }
          pending = false;
        }
      } finally {
        off();
        for (const t of timers) clearInterval(t);
      }
    });
  });

  return app;
}
