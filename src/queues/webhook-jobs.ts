// Jobs of the `webhooks` follow-up queue as every producer adds them (the pipeline's relay, the API's
// replay route): job id, data and options in one place.
import type { JobsOptions } from "bullmq";
import { webhookJobId, type WebhookTask } from "../core/webhook-delivery.js";

/** The data of a `webhooks` job: the task, and for a replay its number. */
export interface WebhookJobData extends WebhookTask {
  readonly replay?: number;
}

/** The backoff type of webhook jobs; the deliveries' worker computes it (core retryDelayMs). */
export const WEBHOOK_BACKOFF = "webhook";

/**
 * Attempts BullMQ allows a delivery: never the limit in practice, since the worker dead-letters a
 * delivery once WEBHOOK_RETRY_FOR_MS has passed (so the schedule, not a count, decides).
 */
const MAX_ATTEMPTS = 100_000;

/** How long finished webhook jobs stay in BullMQ; dead ones (its failed set) as long as the log. */
export interface WebhookJobRetention {
  /** WEBHOOK_LOG_TTL_S. */
  readonly logTtlS: number;
}

/**
 * The options of every webhook job but its id: as the `webhooks` queue's `defaultJobOptions` they
 * apply to the jobs the pipeline's relay adds (which set only the id).
 */
export function webhookJobOptions(retention: WebhookJobRetention): JobsOptions {
  return {
    attempts: MAX_ATTEMPTS,
    backoff: { type: WEBHOOK_BACKOFF },
    removeOnComplete: { age: 3_600, count: 10_000 },
    removeOnFail: { age: retention.logTtlS },
  };
}

/**
 * The job that delivers `task` (or its `replay`-th replay): id `wh.<eventId>` (`.r<n>` for replays),
 * so an event handed over twice is added once. Completed jobs are kept an hour (the delivery log
 * remembers longer, and the worker does not send a delivered event again); failed ones — the
 * dead-letter list, in Bull Board under `webhooks` → failed — as long as the log.
 */
export function webhookJob(
  task: WebhookTask,
  retention: WebhookJobRetention,
  replay?: number,
): { name: string; data: WebhookJobData; opts: JobsOptions } {
  return {
    name: `job.${task.event.event}`,
    data: replay === undefined ? task : { ...task, replay },
    opts: { ...webhookJobOptions(retention), jobId: webhookJobId(task.event, replay) },
  };
}
