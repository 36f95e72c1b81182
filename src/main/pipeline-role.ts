// The pipeline role: the outbox relay and the follow-up queues' consumers (billing; webhooks; audit,
// with the audit log's appender; analytics), each process one relay and one consumer per queue, and
// the scheduled reconciliation (compliance); any number of pipeline processes may run (one appends
// to the audit log at a time).
import { randomBytes } from "node:crypto";
import { hostname } from "node:os";
import { join } from "node:path";
import { Queue, Worker } from "bullmq";
import type { RedisClient } from "../infra/redis-client.js";
import { createLedgerFiles } from "../infra/ledger-files.js";
import { closeRedis, waitReady } from "../infra/redis.js";
import { BillingBusy, billEvent, type BillingTask } from "../pipeline/billing.js";
import { createRelay } from "../pipeline/relay.js";
import { AUDIT_QUEUE, BILLING_QUEUE, WEBHOOKS_QUEUE } from "../queues/keys.js";
import { createOutboxStore } from "../queues/outbox-store.js";
import { createUsageStore } from "../queues/usage-store.js";
import { openAnalyticsStore, startAnalytics } from "./analytics.js";
import { complianceAuditFor, complianceDepsFor, startComplianceSchedule } from "./compliance.js";
import type { RoleContext } from "./role-context.js";
import type { Keys } from "./settings.js";
import { startWebhooks } from "./webhooks.js";
import { startAuditPipeline } from "./audit.js";
import { webhookJobOptions } from "../queues/webhook-jobs.js";

/**
 * Billing jobs kept after they complete: a redelivered event within the hour adds nothing; later,
 * the job's billing marker (BILLING_MARKER_TTL_S) stops a second bill. Bounded: each costs Redis
 * a few kB.
 */
const KEEP_COMPLETED = { age: 3_600, count: 10_000 };

export async function startPipelineRole(ctx: RoleContext & { readonly keys: Keys }): Promise<void> {
  const { env } = ctx.settings;
  const logger = ctx.logger.child({ role: "pipeline" });
  const processId = `${hostname()}-${process.pid}-${randomBytes(3).toString("hex")}`;
  const connections: RedisClient[] = [];
  const connect = (name: string): RedisClient => {
    const c = ctx.redisConnector.connect("worker", name);
    connections.push(c);
    return c;
  };
  ctx.runtime.defer("pipeline connections", async () => {
    await Promise.all(connections.map((c) => closeRedis(c)));
  });
  const redis = connect("rg-pipeline");
  await waitReady(redis, 10_000);
  const prefix = env.REDIS_PREFIX;
  const fault = (point: NonNullable<typeof env.PIPELINE_FAULT>): void => {
    if (env.PIPELINE_FAULT === point) {
      logger.warn({ point }, "PIPELINE_FAULT: killing this process");
      process.kill(process.pid, "SIGKILL");
    }
  };

  const queueOptions = {
    connection: connect("rg-pipeline-queues"),
    prefix,
    defaultJobOptions: {
      // a ledger that cannot be written (disk full) holds billing back, retried every 5 s for days
      attempts: 100_000,
      backoff: { type: "fixed", delay: 5_000 },
      removeOnComplete: KEEP_COMPLETED,
      removeOnFail: false,
    },
  };
  const billingQueue = new Queue(BILLING_QUEUE, queueOptions);
  const webhooksQueue = new Queue(WEBHOOKS_QUEUE, {
    ...queueOptions,
    defaultJobOptions: webhookJobOptions({ logTtlS: env.WEBHOOK_LOG_TTL_S }),
  });
  const auditQueue = new Queue(AUDIT_QUEUE, queueOptions);
  ctx.runtime.defer("follow-up queues", async () => {
    await Promise.all([billingQueue.close(), webhooksQueue.close(), auditQueue.close()]);
  });

  const ledger = createLedgerFiles({ dir: join(ctx.settings.dataDir, "ledger"), writerId: processId });
  ctx.runtime.defer("billing ledger", () => ledger.close());
  const usage = createUsageStore({
    redis,
    prefix,
    markerTtlS: env.BILLING_MARKER_TTL_S,
    usageTtlS: env.USAGE_RETENTION_S,
  });
  const billing = new Worker<BillingTask>(
    BILLING_QUEUE,
    async (job) => {
      await billEvent(job.data.event, {
        ledger,
        usage,
        tiers: ctx.settings.tiers,
        logger,
        fault,
        // one id per run: a run of the same job started again (stalled) waits for this one's lease
        owner: `${processId}:${randomBytes(6).toString("hex")}`,
        leaseMs: env.PIPELINE_LOCK_MS,
      });
    },
    {
      connection: connect("rg-billing"),
      prefix,
      concurrency: env.PIPELINE_CONCURRENCY,
      lockDuration: env.PIPELINE_LOCK_MS,
      stalledInterval: env.PIPELINE_LOCK_MS,
      // a job whose process died is run again, however often that happens (billing is idempotent)
      maxStalledCount: 1_000,
    },
  );
  billing.on("failed", (job, err) =>
    err instanceof BillingBusy
      ? logger.debug({ job: job?.id }, "billing job busy elsewhere; retried")
      : logger.error({ err, job: job?.id }, "billing job failed"),
  );
  billing.on("error", (err) => logger.warn({ err: err.message }, "billing worker connection error"));
  await billing.waitUntilReady();
  ctx.runtime.defer("billing worker", () => billing.close());

  // Webhook deliveries: signed output URLs name PUBLIC_URL (set it when the API is elsewhere).
  await startWebhooks(
    { ...ctx, logger, publicUrl: () => env.PUBLIC_URL ?? `http://${env.HOST}:${env.PORT}` },
    connect("rg-webhooks"),
  );

  // Analytics (ClickHouse): on only when this process runs its consumer (main/analytics.ts).
  const analytics = await startAnalytics(
    { ...ctx, logger, tiers: ctx.settings.tiers },
    { queue: queueOptions.connection, worker: connect("rg-analytics"), prefix },
    queueOptions,
  );

  // Audit records: staged by the `audit` queue's consumer, appended by whichever process holds the log.
  await startAuditPipeline(ctx, { processId, logger, connect, fault });

  // The scheduled reconciliation (main/compliance.ts): one run per COMPLIANCE_EVERY_MS in the fleet.
  const reconcileAnalytics =
    analytics === undefined ? undefined : await openAnalyticsStore({ ...ctx, logger }, { embed: false });
  await startComplianceSchedule({
    env,
    dataDir: ctx.settings.dataDir,
    runtime: ctx.runtime,
    logger,
    clock: ctx.clock,
    blobs: ctx.blobs,
    queueConnection: connect("rg-compliance"),
    workerConnection: connect("rg-compliance-worker"),
    deps: complianceDepsFor({
      env,
      dataDir: ctx.settings.dataDir,
      redis,
      clock: ctx.clock,
      ledger,
      // the scheduled runs verify only what was appended since the last one (one full read in
      // COMPLIANCE_FULL_VERIFY_EVERY)
      audit: complianceAuditFor(ctx.settings, { resume: { logger } }),
      analytics: reconcileAnalytics,
    }),
  });

  // One relay per pool: each pool's outbox is under its own tag (docs/decisions.md "Pools"); the
  // follow-up queues are the deployment's.
  const { pools } = ctx.settings;
  for (const pool of pools.names) {
    const relay = createRelay({
      outbox: createOutboxStore(
        connect(pools.names.length === 1 ? "rg-relay" : `rg-relay-${pool}`),
        pools.prefixOf(prefix, pool),
      ),
      queues: { billing: billingQueue, webhooks: webhooksQueue, audit: auditQueue },
      consumer: processId,
      tiers: ctx.settings.tiers,
      logger: pools.names.length === 1 ? logger : logger.child({ pool }),
      claimIdleMs: env.PIPELINE_CLAIM_MS,
      fault,
      ...(analytics === undefined ? {} : { analytics }),
    });
    void relay.run();
    ctx.runtime.defer(pools.names.length === 1 ? "outbox relay" : `outbox relay ${pool}`, () => relay.stop());
  }
  logger.info(
    { consumer: processId, analytics: analytics !== undefined },
    `pipeline running: outbox relay, billing, webhooks, audit${analytics === undefined ? "" : ", analytics"}`,
  );
}
