// A wake-up latch for the loops that re-read a job when its events say so (SSE streams; the sync wait
// has one of its own that also weighs what woke it, api/sync-wait.ts):
// a signal that comes while the loop is busy is kept and ends its next wait at once, so none is lost.

export interface Wakeup {
  /** Ends the wait in progress, or else the next one. Needs no `this` (pass it as a listener). */
  readonly signal: () => void;
  /**
   * Resolves at the next signal (at once when one came since the last wait), or after `timeoutMs`
   * when given.
   */
  readonly wait: (timeoutMs?: number) => Promise<void>;
}

export function createWakeup(): Wakeup {
  let pending = false;
  let wake: (() => void) | undefined;
  return {
    signal: () => {
      const w = wake;
      wake = undefined;
      if (w) w();
      else pending = true;
    },
    wait: (timeoutMs) => {
      if (pending) {
        pending = false;
        return Promise.resolve();
      }
      return new Promise<void>((resolve) => {
        const timer =
          timeoutMs === undefined
            ? undefined
            : setTimeout(() => {
                // Woken by the timer: a signal from now on is kept for the next wait.
                wake = undefined;
                resolve();
              }, timeoutMs);
        wake = () => {
          clearTimeout(timer);
          resolve();
        };
      });
    },
  };
}
