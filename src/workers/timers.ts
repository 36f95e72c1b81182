// Timers of the worker's parts: periodic tasks that never overlap themselves, and bounded waits.
import type { Logger } from "pino";

/** A periodic task started by {@link every}. */
export interface Periodic {
  /** No further runs (a run in flight goes on). */
  stop(): void;
}

/**
 * Runs `task` every `ms` (the timer does not keep the process alive) and never overlaps it: a tick
 * while the last run is still going is skipped. While Redis is away its calls wait in the offline
 * queue, and piling up one per tick would flood Redis when it returns. A failed run is logged as a
 * warning, "`what` failed".
 */
export function every(ms: number, task: () => Promise<void>, log: Logger, what: string): Periodic {
  let busy = false;
  const timer = setInterval(() => {
    if (busy) return;
    busy = true;
    task()
      .catch((err: unknown) =>
        log.warn({ err: err instanceof Error ? err.message : String(err) }, `${what} failed`),
      )
      .finally(() => {
        busy = false;
      });
  }, ms);
  timer.unref();
  return { stop: () => clearInterval(timer) };
}

/**
 * Waits for `p` (ignoring how it ends) at most `ms`. Every wait of a shutdown is bounded: with Redis
 * gone, its calls would wait in the offline queue.
 */
export function within(p: Promise<unknown> | undefined, ms: number): Promise<unknown> {
  return Promise.race([p?.catch(() => undefined), new Promise<void>((r) => setTimeout(r, ms).unref())]);
}
