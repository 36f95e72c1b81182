// The worker role tells the api role of the same process (`npm start`) that it has just settled a job
// in a terminal state, so a sync caller waiting for it reads the job at once, instead of after the
// job's event comes back through Redis pub/sub (docs/decisions.md "Sync route"). The pub/sub message
// still comes, as for an API in another process. A sync attempt's settle answers with the job's
// record, and passes it on: the waiting route answers from it without reading the job again.
import type { JobRecord } from "./job.js";
import { createLocalSignal } from "./local-signal.js";

/** Told of one terminal settle: the job's id, and its record as the settle left it when known. */
export type SettleListener = (jobId: string, job?: JobRecord) => void;

export interface SettleSignal {
  /** Called by the worker once the settle returned a terminal status (with the job's record, if it has it). */
  readonly settled: (jobId: string, job?: JobRecord) => void;
  /** Calls `listener` for each settle; returns the unsubscribe function. */
  readonly subscribe: (listener: SettleListener) => () => void;
}

export function createSettleSignal(): SettleSignal {
  const signal = createLocalSignal<[string, JobRecord | undefined]>();
  return { settled: (jobId, job) => signal.emit(jobId, job), subscribe: signal.subscribe };
}
