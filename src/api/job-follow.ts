// Following one job's events, for every live view of a job (SSE streams, the WebSocket): its stored
// events from a given id on (presented: signed output URLs), then live ones as the event hub
// announces them, and its queue position while it is queued, re-read every `positionPollMs` and on
// every event, sent when it changed. Ends after the terminal event (a cancellation is stored as an
// `error` event), when the job is gone, or when the caller aborts.
import { TERMINAL } from "../core/job.js";
import type { ApiDeps } from "./deps.js";
import { etaSecondsOf } from "./present.js";
import { createWakeup } from "./wakeup.js";

export type FollowDeps = Pick<ApiDeps, "hub" | "store" | "present" | "capacity" | "clock"> & {
  readonly config: Pick<ApiDeps["config"], "positionPollMs">;
};

/**
 * One event of a followed job. Stored events (`started`, `progress`, `preview`, `complete`, `error`)
 * have the integer id `N` of their place in the job's list; live `position` events and the final
 * `error {code: "job_not_found"}` of a removed job have `<last stored id>.<n>`.
 */
export interface FollowedEvent {
  readonly id: string;
  readonly event: string;
  readonly data: Readonly<Record<string, unknown>>;
  /** The job's last event: nothing follows it. */
  readonly terminal: boolean;
}

/** Stored events that end a stream (a cancellation is stored as an `error` event). */
const TERMINAL_EVENTS: ReadonlySet<string> = new Set(["complete", "error"]);
/** Stored events read per Redis call. */
const BATCH = 1000;

/**
 * Follows job `id` from after its stored event `afterSeq` (0: from the first), calling `emit` for
 * each event in order and waiting for it before the next. Resolves after the terminal event, after
 * `job_not_found` when the job no longer exists, or soon after `signal` aborts (at once when the
 * loop waits; after the Redis call or `emit` in progress otherwise). Releases its hub listener and
 * timer on every path.
 * @throws the store's errors (Redis unreachable) and `emit`'s.
 */
export async function followJob(
  deps: FollowDeps,
  id: string,
  afterSeq: number,
  signal: AbortSignal,
  emit: (ev: FollowedEvent) => Promise<void> | void,
): Promise<void> {
  let lastSeq = afterSeq;
  let done = false;
  let lastPosition = -1;
  let positionTick = 0;
  const wakeup = createWakeup();
  const off = deps.hub.on(id, wakeup.signal);
  signal.addEventListener("abort", wakeup.signal);
  const poll = setInterval(wakeup.signal, deps.config.positionPollMs);

  /** Emits every stored event after `lastSeq`; sets `done` after a terminal one. */
  const sendStored = async () => {
    for (;;) {
      const events = await deps.store.events(id, lastSeq, BATCH);
      for (const ev of events) {
        if (signal.aborted) return;
        lastSeq = ev.seq;
        const terminal = TERMINAL_EVENTS.has(ev.event);
        await emit({
          id: String(ev.seq),
          event: ev.event,
          data: deps.present.eventData(ev.event, ev.data),
          terminal,
        });
        if (terminal) done = true;
      }
      if (done || events.length < BATCH) return;
    }
  };

  try {
    while (!done && !signal.aborted) {
      await sendStored();
      if (done || signal.aborted) break;
      const now = await deps.store.read(id);
      if (!now) {
        // The job was removed (retention or admin): say so and end, never poll forever.
        await emit({
          id: `${lastSeq}.${++positionTick}`,
          event: "error",
          data: { code: "job_not_found", message: "the job no longer exists", retriable: false },
          terminal: true,
        });
        break;
      }
      if (TERMINAL.has(now.job.status)) {
        // Finished (a resume after its last event, or events stored since the read above): send
        // what is left, then end. No further event will ever come.
        await sendStored();
        break;
      }
      if (now.job.status === "queued" && now.position >= 0 && now.position !== lastPosition) {
        lastPosition = now.position;
        const eta = await etaSecondsOf(deps.capacity, deps.clock, now.job, now.position);
        await emit({
          id: `${lastSeq}.${++positionTick}`,
          event: "position",
          data: {
            position: now.position,
            ...(eta === undefined ? {} : { eta_seconds: eta }),
            ...(now.held ? { held: "concurrency_limit" } : {}),
          },
          terminal: false,
        });
      }
      await wakeup.wait();
    }
  } finally {
    off();
    clearInterval(poll);
    signal.removeEventListener("abort", wakeup.signal);
  }
}
