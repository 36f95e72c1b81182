// The worker role tells the api role of the same process (`npm start`) that it has just settled a job
// in a terminal state, so a sync caller waiting for it reads the job at once, instead of after the
// job's event comes back through Redis pub/sub (docs/decisions.md "Sync route"). The pub/sub message
// still comes, as for an API in another process; a second wake-up only costs a read.

export interface SettleSignal {
  /** Called by the worker once the settle returned a terminal status. */
  settled(jobId: string): void;
  /** Calls `listener` for each settle; returns the unsubscribe function. */
  subscribe(listener: (jobId: string) => void): () => void;
}

export function createSettleSignal(): SettleSignal {
  const listeners = new Set<(jobId: string) => void>();
  return {
    settled(jobId) {
      for (const l of listeners) l(jobId);
    },
    subscribe(listener) {
      listeners.add(listener);
      return () => listeners.delete(listener);
    },
  };
}
