// The rollup's safety sweep (docs/decisions.md "Analytics", "The rollup"): every ANALYTICS_SWEEP_MS
// a pipeline process recomputes the rollup of the last ANALYTICS_SWEEP_HOURS hours from the stored
// rows, and its first sweep also fills every hour the base table holds and the rollup has no row
// for (the history of a deployment that had the earlier, view-fed rollup; a rollup dropped by
// hand). Batches keep the rollup exact on their own (pipeline/analytics.ts); the sweep covers rows
// stored by anything else — a process of an earlier release, a restored partition. One sweep at a
// time per process; a failed one is logged and the next one tries again.
import type { Logger } from "pino";
import { sweepSpan, type AnalyticsSink } from "../core/analytics-event.js";

/** The running sweep; `close()` stops it between two hours. Idempotent. */
export interface RollupSweep {
  close(): Promise<void>;
}

export function startRollupSweep(deps: {
  readonly sink: Pick<AnalyticsSink, "refreshHours">;
  /** ANALYTICS_SWEEP_MS: the pause between the end of a sweep and the next; the first runs at once. */
  readonly everyMs: number;
  /** ANALYTICS_SWEEP_HOURS: hours a sweep recomputes, the current one included. */
  readonly hours: number;
  readonly logger: Logger;
  /** Default Date.now. */
  readonly clock?: () => number;
}): RollupSweep {
  const log = deps.logger.child({ part: "rollup-sweep" });
  const clock = deps.clock ?? Date.now;
  const stop = new AbortController();
  let fillMissing = true;
  let failing = false;
  let timer: NodeJS.Timeout | undefined;
  let running: Promise<void> = Promise.resolve();

  async function sweep(): Promise<void> {
    const started = clock();
    try {
      const signal = stop.signal;
      const filled = fillMissing
        ? await deps.sink.refreshHours(
            { fromMs: 0, toMs: started + 3_600_000 },
            { onlyMissing: true, signal },
          )
        : 0;
      fillMissing = false;
      const recent = await deps.sink.refreshHours(sweepSpan(started, deps.hours), { signal });
      if (failing) log.info("rollup sweeps succeed again");
      failing = false;
      const fields = { filled, recent, ms: clock() - started };
      if (filled > 0) log.info(fields, "rollup: hours the rollup lacked filled from the stored rows");
      else log.debug(fields, "rollup sweep done");
    } catch (err) {
      if (!failing && !stop.signal.aborted)
        log.warn({ err: (err as Error).message }, "rollup sweep failed; the next one tries again");
      failing = true;
    }
  }

  function next(delayMs: number): void {
    timer = setTimeout(() => {
      running = sweep().then(() => {
        if (!stop.signal.aborted) next(deps.everyMs);
      });
    }, delayMs);
    timer.unref();
  }

  next(0);
  let closing: Promise<void> | undefined;
  return {
    close() {
      closing ??= (async () => {
        stop.abort();
        clearTimeout(timer);
        await running;
      })();
      return closing;
    },
  };
}
