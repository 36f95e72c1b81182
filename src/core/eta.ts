// ETAs and sync admission (docs/decisions.md "Queue, positions and ETAs"): a queued job at position p
// on a route whose capacity c has r slots busy starts after ⌊(p + r) / c⌋ "waves" of the jobs ahead
// (each as long as their estimated GPU cost) and completes its own estimated cost later.

/** What the wait of a queued job is computed from. */
export interface QueueBasis {
  /** Slots that can run the job now: healthy backend slots, no more than the live worker slots serving them. */
  readonly capacity: number;
  /** Of those, the slots busy now (more is read as all). */
  readonly running: number;
  /** Estimated GPU ms of a job ahead: the length of one wave. */
  readonly waveMs: number;
}

/** Waves that pass before a queued job at `position` starts; undefined when no capacity serves it. */
export function startWaves(position: number, basis: QueueBasis): number | undefined {
  const { capacity } = basis;
  if (capacity <= 0) return undefined;
  const busy = Math.min(capacity, Math.max(0, basis.running));
  return Math.floor((Math.max(0, position) + busy) / capacity);
}

/** ms until a queued job at `position` starts; undefined when no capacity serves it. */
export function startInMs(position: number, basis: QueueBasis): number | undefined {
  const waves = startWaves(position, basis);
  return waves === undefined ? undefined : waves * Math.max(0, basis.waveMs);
}

/**
 * Seconds until a queued job at `position` whose own estimated cost is `costMs` completes, or
 * undefined when no capacity serves it.
 */
export function queuedEtaSeconds(position: number, basis: QueueBasis, costMs: number): number | undefined {
  const start = startInMs(position, basis);
  return start === undefined ? undefined : Math.ceil((start + costMs) / 1000);
}

/** Seconds until a running job completes: its estimated cost left, at least 1 s while running. */
export function runningEtaSeconds(elapsedMs: number, costMs: number): number {
  return Math.max(1, Math.ceil((costMs - elapsedMs) / 1000));
}

/** The waves (slots freeing up, each `waveMs` apart) a sync request's budget allows: ⌊budget / wave⌋. */
export function wavesWithin(budgetMs: number, waveMs: number): number {
  return Math.floor(Math.max(0, budgetMs) / Math.max(1, waveMs));
}

/**
 * The highest position at which a job still starts within `budgetMs` (sync admission): with
 * k = ⌊budget / wave⌋ waves allowed, (k + 1)·c − r − 1. -1 when nothing can start it within the
 * budget (no capacity, or every slot busy for longer than the budget). admit.lua applies it on the
 * leases held at the admission (docs/decisions.md "Queue, positions and ETAs"); this is its
 * statement against the ETA model ({@link startInMs}), which the tests hold it to.
 */
export function maxPositionWithin(budgetMs: number, basis: QueueBasis): number {
  const { capacity } = basis;
  if (capacity <= 0) return -1;
  const waves = wavesWithin(budgetMs, basis.waveMs);
  const busy = Math.min(capacity, Math.max(0, basis.running));
  return Math.max(-1, (waves + 1) * capacity - busy - 1);
}

/**
 * The `Retry-After` (s) of a sync request refused at `position`: until its start would fit the
 * budget, at least 1 s; one wave when no capacity serves it (capacity may come back any time).
 */
export function retryAfterSeconds(position: number, basis: QueueBasis, budgetMs: number): number {
  const start = startInMs(position, basis);
  const waitMs = start === undefined ? basis.waveMs : start - budgetMs;
  return Math.max(1, Math.ceil(waitMs / 1000));
}
