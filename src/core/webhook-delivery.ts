// Webhook deliveries, the pure part: the task the relay hands over, the Standard Webhooks message id
// and body, delivery states and the retry schedule (README "Webhooks"; docs/decisions.md "Webhooks").
import { eventId, type OutboxEvent } from "./outbox.js";
import { decodeJob, toPublicJob } from "./job.js";
import { rfc3339 } from "./time.js";

/**
 * One delivery to do: the data of a job on the `webhooks` queue, added by the pipeline's relay (job id
 * {@link webhookJobId}) for every event a job's webhook subscribes to (`event.record.webhook_events`),
 * with `url` = `event.record.webhook` and `customerId` = `event.record.cust`.
 */
export interface WebhookTask {
  readonly event: OutboxEvent;
  readonly url: string;
  readonly customerId: string;
}

/** Where a delivery stands in its log (`GET /jobs/{id}/webhooks`). */
export type DeliveryState = "pending" | "delivered" | "failed-retrying" | "dead" | "skipped";

/**
 * The delivery's id, also its Standard Webhooks `webhook-id`: one per event, the same on every
 * retry and every replay (a replay is the same message sent again, so a receiver that already has it
 * can drop it).
 */
export function webhookId(e: Pick<OutboxEvent, "jobId" | "seq">): string {
  return `msg_${eventId(e)}`;
}

/** A delivery id as {@link webhookId} makes them (job ids are `j_` + 20–64 alphanumerics). */
export const DELIVERY_ID_RE = /^msg_(j_[A-Za-z0-9]{20,64})\.([1-9][0-9]{0,8})$/;

/** The job a delivery id belongs to, or undefined for a string that is not a delivery id. */
export function jobOfDelivery(deliveryId: string): string | undefined {
  return DELIVERY_ID_RE.exec(deliveryId)?.[1];
}

/** The BullMQ job id of a delivery (`wh.<eventId>`), or of its `n`-th replay (`wh.<eventId>.r<n>`). */
export function webhookJobId(e: Pick<OutboxEvent, "jobId" | "seq">, replay?: number): string {
  return replay === undefined ? `wh.${eventId(e)}` : `wh.${eventId(e)}.r${replay}`;
}

/** Longest webhook URL a task may carry (the request schema allows less). */
const URL_MAX_CHARS = 2_048;
const CUSTOMER_MAX_CHARS = 256;

/**
 * Whether `v` has the shape of a {@link WebhookTask} (checked before any work: a task comes from
 * Redis, where anything may have been written).
 */
export function isWebhookTask(v: unknown): v is WebhookTask {
  if (typeof v !== "object" || v === null) return false;
  const t = v as Record<string, unknown>;
  const e = t.event as Record<string, unknown> | null | undefined;
  return (
    typeof t.url === "string" &&
    t.url.length <= URL_MAX_CHARS &&
    typeof t.customerId === "string" &&
    t.customerId.length > 0 &&
    t.customerId.length <= CUSTOMER_MAX_CHARS &&
    typeof e === "object" &&
    e !== null &&
    typeof e.jobId === "string" &&
    typeof e.seq === "number" &&
    jobOfDelivery(webhookId({ jobId: e.jobId, seq: e.seq })) === e.jobId &&
    typeof e.event === "string" &&
    e.event.length <= 32 &&
    typeof e.at === "number" &&
    Number.isFinite(e.at) &&
    typeof e.data === "object" &&
    e.data !== null &&
    typeof e.record === "object" &&
    e.record !== null
  );
}

/**
 * The body of a delivery (API.md §3 "Webhooks"): `{ type: "job.<event>", timestamp, data: <Job> }`,
 * where `timestamp` is when the event happened and `data` the public job as `GET /jobs/{id}` shows
 * it, from the record the event carries (`urlFor` signs output URLs).
 */
export function webhookBody(event: OutboxEvent, urlFor: (digest: string) => string): string {
  const job = toPublicJob(decodeJob(event.record), { urlFor });
  return JSON.stringify({ type: `job.${event.event}`, timestamp: rfc3339(event.at), data: job });
}

/** The retry schedule (`WEBHOOK_RETRY_BASE_MS`, `WEBHOOK_RETRY_MAX_MS`, `WEBHOOK_RETRY_FOR_MS`). */
export interface RetrySchedule {
  readonly baseMs: number;
  readonly maxMs: number;
  /** Retries stop once this long has passed since the delivery was handed over. */
  readonly forMs: number;
}

/**
 * The delay before retry number `failures` (1 = after the first failed attempt): exponential from
 * `baseMs`, capped at `maxMs`, with "equal jitter" (between half and all of it) so that deliveries
 * that failed together do not come back together. `random` returns [0, 1).
 */
export function retryDelayMs(failures: number, s: RetrySchedule, random: () => number): number {
  const exp = Math.min(s.maxMs, s.baseMs * 2 ** Math.min(Math.max(0, failures - 1), 40));
  return Math.max(1, Math.round(exp / 2 + (exp / 2) * random()));
}

/** Whether a failed delivery handed over at `handedAt` may be tried again at `now`. */
export function mayRetry(handedAt: number, now: number, s: RetrySchedule): boolean {
  return now - handedAt < s.forMs;
}

/** What one attempt's answer means for the delivery. */
export type AttemptVerdict = "delivered" | "gone" | "retry" | "refused";

/**
 * 2xx = delivered; 410 = the receiver is gone (its URL is disabled for the tenant); anything else —
 * another status, a timeout, a network error — is retried. `refused`: the outbound policy refused
 * the target (a bad URL, a port or an address that is not allowed): sending again cannot help.
 */
export function attemptVerdict(
  outcome: { readonly status: number } | { readonly error: string },
): AttemptVerdict {
  if ("status" in outcome) {
    if (outcome.status >= 200 && outcome.status < 300) return "delivered";
    return outcome.status === 410 ? "gone" : "retry";
  }
  return outcome.error === "bad_url" || outcome.error === "blocked_port" || outcome.error === "blocked_target"
    ? "refused"
    : "retry";
}

/** A new webhook signing secret: `whsec_` + base64 of 32 random bytes (Standard Webhooks' form). */
export function newWebhookSecret(randomBytes: (n: number) => Uint8Array): string {
  return `whsec_${Buffer.from(randomBytes(32)).toString("base64")}`;
}
