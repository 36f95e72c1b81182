// The webhook delivery log in Redis (`GET /jobs/{id}/webhooks`): one record per delivery (job event ×
// its webhook) with its latest attempts, the per-job index, and the URLs a tenant's receiver turned
// off with 410 Gone. Bounded: attempts per delivery and deliveries per job are capped, and every key
// expires WEBHOOK_LOG_TTL_S after its last change.
import type { RedisClient } from "../infra/redis-client.js";
import { webhookId, type DeliveryState, type WebhookTask, isWebhookTask } from "../core/webhook-delivery.js";
import { createKeys } from "./keys.js";

/** Deliveries kept in a job's index (the latest events; a job subscribed to `progress` has many). */
export const MAX_DELIVERIES_PER_JOB = 200;

/** One attempt as the log keeps it. */
export interface AttemptRecord {
  /** When it started (ms). */
  readonly at: number;
  readonly durationMs: number;
  /** The receiver's status code, when it answered. */
  readonly status?: number;
  /** Why it failed without an answer (an OutboundError code: `timeout`, `network`, `blocked_target`…). */
  readonly error?: string;
  /** The replay it belonged to (1, 2, …), absent for the original delivery and its retries. */
  readonly replay?: number;
}

/** A delivery as the log shows it. */
export interface DeliveryRecord {
  readonly id: string;
  readonly customerId: string;
  readonly jobId: string;
  readonly event: string;
  readonly url: string;
  readonly state: DeliveryState;
  readonly createdAt: number;
  readonly updatedAt: number;
  readonly replays: number;
  readonly attempts: readonly AttemptRecord[];
}

export interface WebhookLog {
  /** Records the delivery of `task` as pending unless it is known already (idempotent). */
  open(task: WebhookTask, now: number): Promise<void>;
  /** Appends an attempt (the oldest beyond the cap are dropped) and sets the delivery's state. */
  attempt(deliveryId: string, attempt: AttemptRecord, state: DeliveryState, now: number): Promise<void>;
  /** Sets the delivery's state without an attempt (`skipped`). */
  setState(deliveryId: string, state: DeliveryState, now: number): Promise<void>;
  /** The delivery's state, or undefined when it is not (or no longer) logged. */
  state(deliveryId: string): Promise<DeliveryState | undefined>;
  /** The delivery's task and owner, for a replay; undefined when it is not logged. */
  task(deliveryId: string): Promise<WebhookTask | undefined>;
  /** The job's deliveries, oldest event first (at most {@link MAX_DELIVERIES_PER_JOB}). */
  list(jobId: string): Promise<DeliveryRecord[]>;
  /** Counts a replay of the delivery, sets it pending and returns the replay's number (1, 2, …). */
  replay(deliveryId: string, now: number): Promise<number>;
  /** Whether `url` answered 410 Gone for `customer` (deliveries to it are skipped). */
  isDisabled(customer: string, url: string): Promise<boolean>;
  disable(customer: string, url: string, now: number): Promise<void>;
  /** Lets deliveries to `url` go out again; true when it was disabled. */
  enable(customer: string, url: string): Promise<boolean>;
}

export interface WebhookLogOptions {
  readonly redis: RedisClient;
  readonly prefix: string;
  /** WEBHOOK_LOG_TTL_S. */
  readonly ttlS: number;
  /** WEBHOOK_LOG_ATTEMPTS. */
  readonly maxAttempts: number;
}

const STATES: ReadonlySet<string> = new Set(["pending", "delivered", "failed-retrying", "dead", "skipped"]);
const asState = (v: string | null | undefined): DeliveryState | undefined =>
  v !== null && v !== undefined && STATES.has(v) ? (v as DeliveryState) : undefined;

/** Throws the first error of a MULTI's replies. */
function check(replies: [Error | null, unknown][] | null): [Error | null, unknown][] {
  if (replies === null) throw new Error("the transaction was aborted");
  for (const [err] of replies) if (err) throw err;
  return replies;
}

function parseAttempt(raw: string): AttemptRecord | undefined {
  try {
    const a = JSON.parse(raw) as Record<string, unknown>;
    if (typeof a.at !== "number" || typeof a.durationMs !== "number") return undefined;
    return {
      at: a.at,
      durationMs: a.durationMs,
      ...(typeof a.status === "number" ? { status: a.status } : {}),
      ...(typeof a.error === "string" ? { error: a.error } : {}),
      ...(typeof a.replay === "number" ? { replay: a.replay } : {}),
    };
  } catch {
    return undefined;
  }
}

export function createWebhookLog(opts: WebhookLogOptions): WebhookLog {
  const keys = createKeys(opts.prefix);
  const { redis, ttlS } = opts;

  return {
    async open(task, now) {
      const id = webhookId(task.event);
      const key = keys.webhookDelivery(id);
      const index = keys.webhookDeliveries(task.event.jobId);
      check(
        await redis
          .multi()
          .hset(key, {
            cust: task.customerId,
            job: task.event.jobId,
            event: task.event.event,
            url: task.url,
            task: JSON.stringify(task),
          })
          .hsetnx(key, "state", "pending")
          .hsetnx(key, "created", now)
          .hsetnx(key, "updated", now)
          .expire(key, ttlS)
          .zadd(index, task.event.seq, id)
          .zremrangebyrank(index, 0, -(MAX_DELIVERIES_PER_JOB + 1))
          .expire(index, ttlS)
          .exec(),
      );
    },

    async attempt(deliveryId, attempt, state, now) {
      const key = keys.webhookDelivery(deliveryId);
      const att = keys.webhookAttempts(deliveryId);
      check(
        await redis
          .multi()
          .rpush(att, JSON.stringify(attempt))
          .ltrim(att, -opts.maxAttempts, -1)
          .expire(att, ttlS)
          .hset(key, { state, updated: now })
          .expire(key, ttlS)
          .exec(),
      );
    },

    async setState(deliveryId, state, now) {
      const key = keys.webhookDelivery(deliveryId);
      check(await redis.multi().hset(key, { state, updated: now }).expire(key, ttlS).exec());
    },

    async state(deliveryId) {
      return asState(await redis.hget(keys.webhookDelivery(deliveryId), "state"));
    },

    async task(deliveryId) {
      const raw = await redis.hget(keys.webhookDelivery(deliveryId), "task");
      if (raw === null) return undefined;
      try {
        const t: unknown = JSON.parse(raw);
        return isWebhookTask(t) ? t : undefined;
      } catch {
        return undefined;
      }
    },

    async list(jobId) {
      const ids = await redis.zrange(keys.webhookDeliveries(jobId), "0", String(MAX_DELIVERIES_PER_JOB - 1));
      if (ids.length === 0) return [];
      const pipe = redis.pipeline();
      for (const id of ids) {
        pipe.hmget(keys.webhookDelivery(id), "cust", "job", "event", "url", "state", "created", "updated");
        pipe.hget(keys.webhookDelivery(id), "replays");
        pipe.lrange(keys.webhookAttempts(id), 0, -1);
      }
      const replies = check(await pipe.exec());
      const out: DeliveryRecord[] = [];
      ids.forEach((id, i) => {
        const [cust, job, event, url, state, created, updated] = replies[i * 3]![1] as (string | null)[];
        const replays = replies[i * 3 + 1]![1] as string | null;
        const attempts = (replies[i * 3 + 2]![1] as string[])
          .map(parseAttempt)
          .filter((a) => a !== undefined);
        const st = asState(state);
        // An index entry whose record expired is left out.
        if (!cust || !job || !event || !url || st === undefined) return;
        out.push({
          id,
          customerId: cust,
          jobId: job,
          event,
          url,
          state: st,
          createdAt: Number(created),
          updatedAt: Number(updated),
          replays: Number(replays ?? 0),
          attempts,
        });
      });
      return out;
    },

    async replay(deliveryId, now) {
      const key = keys.webhookDelivery(deliveryId);
      const replies = check(
        await redis
          .multi()
          .hincrby(key, "replays", 1)
          .hset(key, { state: "pending", updated: now })
          .expire(key, ttlS)
          .exec(),
      );
      return Number(replies[0]![1]);
    },

    async isDisabled(customer, url) {
      return (await redis.hexists(keys.webhookDisabled(customer), url)) === 1;
    },

    async disable(customer, url, now) {
      await redis.hset(keys.webhookDisabled(customer), url, now);
    },

    async enable(customer, url) {
      return (await redis.hdel(keys.webhookDisabled(customer), url)) > 0;
    },
  };
}
