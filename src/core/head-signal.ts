// The api role tells the worker role of the same process (`npm start`) that it has just admitted a job
// at the head of the queue: the worker starts a dispatch pass at once, instead of after the wake
// message comes back through Redis pub/sub, and skips the pass that message would start (its
// `"<id> admitted"` names the job: queues/lua/admit.lua). An API elsewhere has only the message.
import { createLocalSignal } from "./local-signal.js";

export interface HeadSignal {
  /** Called by the api role once `admit.lua` placed the job at position 0 (it published the wake). */
  readonly admitted: (jobId: string) => void;
  /** Calls `listener` for each such admission; returns the unsubscribe function. */
  readonly subscribe: (listener: (jobId: string) => void) => () => void;
}

export function createHeadSignal(): HeadSignal {
  const signal = createLocalSignal<[string]>();
  return { admitted: (jobId) => signal.emit(jobId), subscribe: signal.subscribe };
}
