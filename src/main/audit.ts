// Wires the audit log's pipeline side (docs/decisions.md "Audit log: the appender"): the `audit`
// queue's consumer, which stages each finished job's record, and this process's appender, which
// appends while it holds the log's lock. Everything opened here is closed at shutdown.
import { UnrecoverableError, Worker } from "bullmq";
import type { RedisClient } from "../infra/redis-client.js";
import type { Logger } from "pino";
import { openAuditFiles } from "../infra/audit-files.js";
import { createAuditAppender, type AuditFault } from "../pipeline/audit-appender.js";
import { BadAuditTask, stageAuditRecord } from "../pipeline/audit-stage.js";
import { createAuditStore } from "../queues/audit-store.js";
import { AUDIT_QUEUE } from "../queues/keys.js";
import type { RoleContext } from "./role-context.js";

export interface AuditPipelineOptions {
  /** This process's id (the appender's lock owner). */
  readonly processId: string;
  readonly logger: Logger;
  /** Opens a connection of the pipeline's (closed with the role). */
  readonly connect: (name: string) => RedisClient;
  readonly fault: (point: AuditFault) => void;
}

/** Starts the `audit` queue's consumer and the appender; both stop at shutdown. */
export async function startAuditPipeline(ctx: RoleContext, o: AuditPipelineOptions): Promise<void> {
  const { env } = ctx.settings;
  const prefix = env.REDIS_PREFIX;
  const store = createAuditStore(o.connect("rg-audit"), prefix);
  const worker = new Worker(
    AUDIT_QUEUE,
    async (job) => {
      try {
        await stageAuditRecord(job.data, store);
      } catch (err) {
        if (err instanceof BadAuditTask) throw new UnrecoverableError(err.message);
        throw err;
      }
    },
    {
      connection: o.connect("rg-audit-stage"),
      prefix,
      concurrency: env.PIPELINE_CONCURRENCY,
      lockDuration: env.PIPELINE_LOCK_MS,
      stalledInterval: env.PIPELINE_LOCK_MS,
      // staging is idempotent: a job whose process died is run again, however often
      maxStalledCount: 1_000,
    },
  );
  worker.on("failed", (job, err) => o.logger.error({ err, job: job?.id }, "audit staging job failed"));
  worker.on("error", (err) => o.logger.warn({ err: err.message }, "audit worker connection error"));
  await worker.waitUntilReady();
  ctx.runtime.defer("audit worker", () => worker.close());

  const files = openAuditFiles(ctx.settings.dataDir, {
    ...(env.AUDIT_SIGNING_KEY === undefined ? {} : { signingKey: env.AUDIT_SIGNING_KEY }),
    ...(env.AUDIT_LOG_ID === undefined ? {} : { logId: env.AUDIT_LOG_ID }),
  });
  const appender = createAuditAppender({
    store,
    blobs: ctx.blobs,
    files,
    owner: o.processId,
    segmentSize: env.AUDIT_SEGMENT_SIZE,
    checkpointMs: env.AUDIT_CHECKPOINT_MS,
    lockMs: env.AUDIT_LOCK_MS,
    clock: ctx.clock,
    logger: o.logger,
    fault: o.fault,
  });
  void appender.run();
  ctx.runtime.defer("audit appender", () => appender.stop());
}
