// The sync route's wait for its job's end. The watch is taken before the admission, so no wake-up
// can be missed and the job is read only when it may have ended: on a terminal event or a terminal
// settle of this process's worker, on a message that does not say, and on a poll every second
// (which covers a lost message). The job's other events (started, progress) wake nothing up: a read
// of a running job would only cost its caller time. A settle by this process's worker hands over the
// job's record with the wake-up, and the wait answers from it (docs/decisions.md "Sync route").
import { AppError } from "../core/errors.js";
import { TERMINAL, type JobRecord } from "../core/job.js";
import type { ApiDeps } from "./deps.js";
import type { JobWake } from "./event-hub.js";

/** Between two reads of the job at most this long passes (the job's other events do not delay it). */
const POLL_MS = 1_000;

export interface JobWatch {
  /**
   * Waits until the job finishes (returns it), `budgetMs` runs out or `aborted` fires (returns
   * undefined).
   * @throws AppError internal_error when the job disappears meanwhile.
   */
  until(budgetMs: number, aborted: AbortSignal): Promise<JobRecord | undefined>;
  /** Stops listening (always call it, also when the admission failed). */
  close(): void;
}

/** Why a wait ended: a job wake-up, the poll, or the client's abort. */
type Why = JobWake | "poll" | "abort";

/** Of two reasons the stronger one (a kept wake-up must not hide a read). */
const RANK: Readonly<Record<Why, number>> = { event: 0, poll: 1, any: 1, ended: 2, abort: 3 };

/** Starts watching job `id` (before it is admitted: nothing is missed). `pollMs`: tests. */
export function watchJob(
  deps: Pick<ApiDeps, "hub" | "store" | "clock">,
  id: string,
  pollMs = POLL_MS,
): JobWatch {
  // A wake-up that comes while the loop reads is kept (the strongest of them) for the next wait.
  let kept: Why | undefined;
  let resolveWait: ((why: Why) => void) | undefined;
  const signal = (why: Why) => {
    const r = resolveWait;
    if (r) {
      resolveWait = undefined;
      r(why);
    } else if (kept === undefined || RANK[why] > RANK[kept]) kept = why;
  };
  // The record a terminal settle of this process's worker left: the answer, without a read.
  let settled: JobRecord | undefined;
  // A hub that names no reason (a listener called bare) could mean anything: read.
  const off = deps.hub.on(id, (wake: JobWake | undefined, job?: JobRecord) => {
    if (job !== undefined && TERMINAL.has(job.status)) settled = job;
    signal(wake ?? "any");
  });
  const onAbort = () => signal("abort");
  const next = (ms: number) => {
    if (kept !== undefined) {
      const why = kept;
      kept = undefined;
      return Promise.resolve(why);
    }
    return new Promise<Why>((resolve) => {
      const timer = setTimeout(() => {
        resolveWait = undefined;
        resolve("poll");
      }, ms);
      resolveWait = (why) => {
        clearTimeout(timer);
        resolve(why);
      };
    });
  };

  return {
    async until(budgetMs, aborted) {
      const deadline = deps.clock() + budgetMs;
      // The next poll, fixed from the last read on: wake-ups that read nothing do not move it.
      let pollAt = deps.clock() + pollMs;
      // One abort listener for the whole wait (not one per wake-up, which piles up listeners on a
      // long job with many events).
      aborted.addEventListener("abort", onAbort);
      try {
        let read = false;
        for (;;) {
          if (settled) return settled;
          if (read) {
            const found = await deps.store.read(id);
            if (!found) {
              throw new AppError("internal_error", "the job disappeared while waiting for it", {
                headers: { "x-job-id": id },
              });
            }
            if (TERMINAL.has(found.job.status)) return found.job;
            pollAt = deps.clock() + pollMs;
            // the record may have come while the read was in flight
            if (settled) return settled;
          }
          const now = deps.clock();
          const left = deadline - now;
          if (left <= 0 || aborted.aborted) return undefined;
          const why = await next(Math.max(0, Math.min(left, pollAt - now)));
          read = why !== "event" && why !== "abort";
        }
      } finally {
        aborted.removeEventListener("abort", onAbort);
      }
    },
    close: off,
  };
}
