// The consumer of the `webhooks` follow-up queue: a BullMQ worker that makes delivery attempts, lets
// BullMQ retry failures on the webhook schedule (exponential, capped, jittered) and dead-letters a
// delivery — BullMQ's failed set of `webhooks` — once its retry window has passed.
import type { RedisClient } from "../../infra/redis-client.js";
import type { Logger } from "pino";
import { UnrecoverableError, Worker, type Job } from "bullmq";
import { isWebhookTask, retryDelayMs, type RetrySchedule } from "../../core/webhook-delivery.js";
import type { WebhookRecorder } from "../../core/metrics.js";
import { WEBHOOKS_QUEUE } from "../../queues/keys.js";
import { WEBHOOK_BACKOFF, type WebhookJobData } from "../../queues/webhook-jobs.js";
import { deliverOnce, type DeliverDeps } from "./deliver.js";

export type { WebhookTask } from "../../core/webhook-delivery.js";
export { webhookJob, type WebhookJobData } from "../../queues/webhook-jobs.js";

export interface WebhookDeliveriesDeps extends DeliverDeps {
  /** A connection for BullMQ's worker in the worker profile (closed by whoever opened it). */
  readonly connection: RedisClient;
  /** BullMQ key prefix (REDIS_PREFIX). */
  readonly prefix: string;
  /** WEBHOOK_CONCURRENCY. */
  readonly concurrency: number;
  readonly logger: Logger;
  /** [0, 1) for the retry jitter; default Math.random. */
  readonly random?: () => number;
  /** Counts the attempts' outcomes (the process's metrics). */
  readonly metrics: WebhookRecorder;
}

/** The running consumer; `close()` lets attempts in flight finish (each has its deadline). Idempotent. */
export interface WebhookDeliveries {
  close(): Promise<void>;
}

/** Starts the `webhooks` worker; resolves once it is connected. */
export async function startWebhookDeliveries(deps: WebhookDeliveriesDeps): Promise<WebhookDeliveries> {
  const log = deps.logger.child({ part: "webhooks" });
  const random = deps.random ?? Math.random;
  const schedule: RetrySchedule = deps.schedule;

  async function process(job: Job<WebhookJobData>): Promise<string> {
    const data: unknown = job.data;
    if (!isWebhookTask(data)) throw new UnrecoverableError("not a webhook task");
    const replay = typeof job.data.replay === "number" ? job.data.replay : undefined;
    let outcome: Awaited<ReturnType<typeof deliverOnce>>;
    try {
      outcome = await deliverOnce(deps, data, {
        handedAt: job.timestamp,
        ...(replay === undefined ? {} : { replay }),
      });
    } catch (err) {
      deps.metrics.delivery("error");
      throw err;
    }
    deps.metrics.delivery(outcome.kind);
    switch (outcome.kind) {
      case "delivered":
      case "skipped":
        return outcome.kind;
      case "retry":
        throw new Error(outcome.reason);
      case "dead":
        throw new UnrecoverableError(outcome.reason);
    }
  }

  const worker = new Worker<WebhookJobData, string>(WEBHOOKS_QUEUE, process, {
    connection: deps.connection,
    prefix: deps.prefix,
    concurrency: deps.concurrency,
    autorun: true,
    settings: {
      backoffStrategy: (attemptsMade, type) =>
        type === WEBHOOK_BACKOFF ? retryDelayMs(attemptsMade, schedule, random) : 1_000,
    },
  });
  worker.on("error", (err) => log.warn({ err: err.message }, "webhooks worker connection error"));
  worker.on("failed", (job, err) => {
    // Messages name no secret and no address (OutboundError messages are safe to show).
    if (err instanceof UnrecoverableError || err.name === "UnrecoverableError")
      log.warn({ job: job?.id, reason: err.message }, "webhook delivery dead-lettered");
    else log.info({ job: job?.id, reason: err.message }, "webhook delivery failed; retried later");
  });
  await worker.waitUntilReady();

  let closed: Promise<void> | undefined;
  return {
    close() {
      closed ??= worker.close();
      return closed;
    },
  };
}
