// ETA from measured service times: a job at position p on a route with capacity c starts after
// floor(p / c) service "waves" and completes one wave later.

/** Seconds until a queued job at `position` completes, or undefined when no capacity serves it. */
export function queuedEtaSeconds(position: number, capacity: number, serviceMs: number): number | undefined {
  if (capacity <= 0) return undefined;
  return Math.ceil(((Math.floor(position / capacity) + 1) * serviceMs) / 1000);
}

/** Seconds until a running job completes: the service time left, at least 1 s while running. */
export function runningEtaSeconds(elapsedMs: number, serviceMs: number): number {
  return Math.max(1, Math.ceil((serviceMs - elapsedMs) / 1000));
}

/**
 * The highest position at which a job still starts within `budgetMs` (sync admission), or -1 when
 * nothing can start it (no capacity).
 */
export function maxPositionWithin(budgetMs: number, capacity: number, serviceMs: number): number {
  if (capacity <= 0) return -1;
  return capacity * Math.max(1, Math.ceil(budgetMs / Math.max(1, serviceMs))) - 1;
}
