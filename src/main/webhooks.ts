// Wires webhook deliveries: the stores and the replay producer for the API role, and the `webhooks`
// queue's consumer for the pipeline role. Everything opened here is closed at shutdown.
import { randomBytes } from "node:crypto";
import type { RedisClient } from "../infra/redis-client.js";
import { Queue } from "bullmq";
import type { WebhookApi } from "../api/deps.js";
import type { OutboundHttp } from "../core/ports.js";
import { objectUrlSigner } from "../core/url-signing.js";
import { closeRedis } from "../infra/redis.js";
import { createOutboundHttp } from "../infra/outbound-http.js";
import { WEBHOOKS_QUEUE } from "../queues/keys.js";
import { createWebhookLog, type WebhookLog } from "../queues/webhook-log.js";
import { createWebhookSecrets, type WebhookSecrets } from "../queues/webhook-secrets.js";
import { webhookJob, type WebhookJobData } from "../queues/webhook-jobs.js";
import { startWebhookDeliveries, type WebhookDeliveries } from "../pipeline/webhooks/deliveries.js";
import type { RoleContext } from "./role-context.js";
import { readCaFile } from "./ca-file.js";
import type { Keys } from "./settings.js";

/** The secrets and the delivery log on `redis`, as the environment configures them. */
function stores(ctx: RoleContext, redis: RedisClient): { secrets: WebhookSecrets; log: WebhookLog } {
  const { env } = ctx.settings;
  return {
    secrets: createWebhookSecrets({
      redis,
      prefix: env.REDIS_PREFIX,
      clock: ctx.clock,
      overlapMs: env.WEBHOOK_SECRET_OVERLAP_MS,
      randomBytes: (n) => new Uint8Array(randomBytes(n)),
    }),
    log: createWebhookLog({
      redis,
      prefix: env.REDIS_PREFIX,
      ttlS: env.WEBHOOK_LOG_TTL_S,
      maxAttempts: env.WEBHOOK_LOG_ATTEMPTS,
    }),
  };
}

/**
 * What the API's webhook routes need (ApiDeps `webhooks`): the stores on the API's connection, and a
 * `webhooks` queue producer for replays on a connection of its own, opened on the first replay. It is
 * in the `api` profile and a replay is given REDIS_COMMAND_TIMEOUT_MS, BullMQ's first connect
 * included: with Redis away (an outage, a failover) the request answers 503, it does not wait.
 */
export function webhookApiFor(ctx: RoleContext, redis: RedisClient): WebhookApi {
  const { env } = ctx.settings;
  // Opened on the first replay: most API processes never need it.
  let queue: Queue<WebhookJobData> | undefined;
  const producer = () => {
    if (queue) return queue;
    const connection = ctx.redisConnector.connect("api", "rg-webhooks-producer");
    const q = new Queue<WebhookJobData>(WEBHOOKS_QUEUE, { connection, prefix: env.REDIS_PREFIX });
    q.on("error", (err) => ctx.logger.warn({ err: err.message }, "webhooks queue connection error"));
    ctx.runtime.defer("webhooks producer", async () => {
      await q.close();
      await closeRedis(connection);
    });
    queue = q;
    return q;
  };
  return {
    ...stores(ctx, redis),
    async enqueueReplay(task, replay) {
      const job = webhookJob(task, { logTtlS: env.WEBHOOK_LOG_TTL_S }, replay);
      let timer: NodeJS.Timeout | undefined;
      try {
        await Promise.race([
          producer().add(job.name, job.data, job.opts),
          new Promise<never>((_, reject) => {
            // The message the API's error handler knows as "Redis unavailable" (503).
            timer = setTimeout(() => reject(new Error("Command timed out")), env.REDIS_COMMAND_TIMEOUT_MS);
          }),
        ]);
      } finally {
        clearTimeout(timer);
      }
    },
  };
}

/**
 * Starts the `webhooks` consumer (the pipeline role): its own outbound client (WEBHOOK_TIMEOUT_MS,
 * the outbound policy), the stores on `redis` (a worker-profile connection), signed output URLs with
 * the object-URL key and PUBLIC_URL. `http` replaces the outbound client (tests: a custom resolver).
 */
export async function startWebhooks(
  ctx: RoleContext & { readonly keys: Keys; readonly publicUrl: () => string },
  redis: RedisClient,
  opts: { readonly http?: OutboundHttp } = {},
): Promise<WebhookDeliveries> {
  const { env } = ctx.settings;
  const extraCa = opts.http === undefined ? readCaFile(env.OUTBOUND_CA_FILE) : undefined;
  const http =
    opts.http ??
    createOutboundHttp({
      policy: { allowPrivate: env.WEBHOOK_ALLOW_PRIVATE, allowedPorts: env.OUTBOUND_ALLOWED_PORTS },
      connectTimeoutMs: Math.min(env.OUTBOUND_CONNECT_TIMEOUT_MS, env.WEBHOOK_TIMEOUT_MS),
      timeoutMs: env.WEBHOOK_TIMEOUT_MS,
      maxBytes: 4_096,
      ...(extraCa === undefined ? {} : { extraCa }),
    });
  if (opts.http === undefined) ctx.runtime.defer("webhooks outbound http", () => http.close());
  const connection = ctx.redisConnector.connect("worker", "rg-webhooks-worker");
  ctx.runtime.defer("webhooks worker connection", () => closeRedis(connection));
  const deliveries = await startWebhookDeliveries({
    ...stores(ctx, redis),
    http,
    clock: ctx.clock,
    urlFor: objectUrlSigner({
      publicUrl: ctx.publicUrl,
      urlKey: ctx.keys.objectUrl,
      outputUrlTtlS: env.OUTPUT_URL_TTL_S,
      clock: ctx.clock,
    }),
    timeoutMs: env.WEBHOOK_TIMEOUT_MS,
    schedule: {
      baseMs: env.WEBHOOK_RETRY_BASE_MS,
      maxMs: env.WEBHOOK_RETRY_MAX_MS,
      forMs: env.WEBHOOK_RETRY_FOR_MS,
    },
    connection,
    prefix: env.REDIS_PREFIX,
    concurrency: env.WEBHOOK_CONCURRENCY,
    logger: ctx.logger,
    metrics: ctx.metrics.webhooks(),
  });
  ctx.runtime.defer("webhooks worker", () => deliveries.close());
  return deliveries;
}
