// One attempt of one webhook delivery: sign the message the Standard Webhooks way, send it through the
// guarded outbound client, log the attempt, and say what becomes of the delivery.
import { Webhook } from "standardwebhooks";
import { OutboundError, type OutboundHttp } from "../../core/ports.js";
import {
  attemptVerdict,
  mayRetry,
  webhookBody,
  webhookId,
  type RetrySchedule,
  type WebhookTask,
} from "../../core/webhook-delivery.js";
import type { WebhookLog } from "../../queues/webhook-log.js";
import type { WebhookSecrets } from "../../queues/webhook-secrets.js";

/** Bytes of a receiver's answer read (the status is what counts; the rest is not read). */
const ANSWER_MAX_BYTES = 4_096;

export interface DeliverDeps {
  readonly http: OutboundHttp;
  readonly secrets: WebhookSecrets;
  readonly log: WebhookLog;
  readonly clock: () => number;
  /** Signs an output digest into an absolute object URL (as `GET /jobs/{id}` shows it). */
  readonly urlFor: (digest: string) => string;
  /** WEBHOOK_TIMEOUT_MS. */
  readonly timeoutMs: number;
  readonly schedule: RetrySchedule;
}

/**
 * What became of the delivery after this attempt: `delivered` (2xx), `skipped` (its URL is disabled),
 * `retry` (try again later), `dead` (410 Gone, a refused target, or retried for the whole schedule).
 */
export type DeliveryOutcome =
  { readonly kind: "delivered" | "skipped" } | { readonly kind: "retry" | "dead"; readonly reason: string };

/** The Standard Webhooks headers of `body` signed with every secret in `secrets` (space-separated). */
export function signedHeaders(
  id: string,
  now: number,
  body: string,
  secrets: readonly string[],
): Record<string, string> {
  const at = new Date(now);
  return {
    "webhook-id": id,
    "webhook-timestamp": String(Math.floor(now / 1000)),
    "webhook-signature": secrets.map((s) => new Webhook(s).sign(id, at, body)).join(" "),
  };
}

/**
 * Makes one attempt at delivering `task`. `handedAt`: when the delivery (or this replay) was handed
 * over, the start of its retry window; `replay`: the replay's number. An original delivery whose log
 * says `delivered` is not sent again (the same event handed over twice). Every attempt is logged.
 */
export async function deliverOnce(
  deps: DeliverDeps,
  task: WebhookTask,
  ctx: { readonly handedAt: number; readonly replay?: number },
): Promise<DeliveryOutcome> {
  const id = webhookId(task.event);
  const { log } = deps;
  await log.open(task, deps.clock());
  if (ctx.replay === undefined && (await log.state(id)) === "delivered") return { kind: "delivered" };
  if (await log.isDisabled(task.customerId, task.url)) {
    await log.setState(id, "skipped", deps.clock());
    return { kind: "skipped" };
  }

  const body = webhookBody(task.event, deps.urlFor);
  const secrets = await deps.secrets.signing(task.customerId);
  const started = deps.clock();
  let outcome: { status: number } | { error: string };
  try {
    const res = await deps.http.request({
      url: task.url,
      method: "POST",
      headers: {
        "content-type": "application/json",
        ...signedHeaders(id, started, body, secrets),
      },
      body,
      timeoutMs: deps.timeoutMs,
      maxBytes: ANSWER_MAX_BYTES,
      truncate: true,
    });
    outcome = { status: res.status };
  } catch (err) {
    if (!(err instanceof OutboundError)) throw err;
    outcome = { error: err.code };
  }
  const ended = deps.clock();
  const verdict = attemptVerdict(outcome);
  const canRetry = verdict === "retry" && mayRetry(ctx.handedAt, ended, deps.schedule);
  const state =
    verdict === "delivered" ? "delivered" : verdict === "retry" && canRetry ? "failed-retrying" : "dead";
  await log.attempt(
    id,
    {
      at: started,
      durationMs: ended - started,
      ...outcome,
      ...(ctx.replay === undefined ? {} : { replay: ctx.replay }),
    },
    state,
    ended,
  );
  const what = "status" in outcome ? `the receiver answered ${outcome.status}` : outcome.error;
  switch (verdict) {
    case "delivered":
      return { kind: "delivered" };
    case "gone":
      await log.disable(task.customerId, task.url, ended);
      return { kind: "dead", reason: "the receiver answered 410 Gone; its URL is disabled" };
    case "refused":
      return { kind: "dead", reason: `the target is refused (${what})` };
    case "retry":
      return canRetry
        ? { kind: "retry", reason: what }
        : { kind: "dead", reason: `still failing after the retry window (${what})` };
  }
}
