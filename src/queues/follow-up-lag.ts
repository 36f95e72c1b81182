// The backlog of a BullMQ follow-up queue (billing, webhooks), read through BullMQ's own getters:
// what waits to run, what waits for a retry scheduled later, and the age of the oldest waiting job.
// Three bounded reads, whatever the queue holds (the metrics' pipeline lag, read at scrape time).
import type { Queue } from "bullmq";

export interface FollowUpLag {
  /** Jobs ready to run (waiting or prioritized), not yet taken by a consumer. */
  readonly waiting: number;
  /** Jobs waiting for a retry (or a delay) scheduled later. */
  readonly delayed: number;
  /** Age of the oldest waiting job (ms since it was added; 0 when none waits). */
  readonly oldestMs: number;
}

export async function followUpLag(
  queue: Pick<Queue, "getJobCounts" | "getWaiting">,
  now: number,
): Promise<FollowUpLag> {
  const [counts, oldest] = await Promise.all([
    queue.getJobCounts("wait", "prioritized", "delayed"),
    // the oldest first: BullMQ adds at the list's head and takes from its tail
    queue.getWaiting(0, 0),
  ]);
  const at = oldest[0]?.timestamp;
  return {
    waiting: (counts.wait ?? 0) + (counts.prioritized ?? 0),
    delayed: counts.delayed ?? 0,
    oldestMs: at === undefined ? 0 : Math.max(0, now - at),
  };
}
