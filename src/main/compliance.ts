// Compliance wiring (README "Compliance"; docs/decisions.md "Compliance"): the reconciliation's
// sources and settings from the configuration — the ledger files, the audit log under DATA_DIR, the
// analytics store, the admissions journal, Redis — and, in the pipeline role, the BullMQ job
// scheduler entry whose runs store each report in the CAS and list it.
import { join } from "node:path";
import { Queue, Worker } from "bullmq";
import type { RedisClient } from "../infra/redis-client.js";
import type { Logger } from "pino";
import type { AuditRecord } from "../core/audit-record.js";
import type { BlobStore, Ledger } from "../core/ports.js";
import { rfc3339, type Clock } from "../core/time.js";
import type { Env } from "../config/env.js";
import { pruneAdmissions, readAdmissions } from "../infra/admission-journal.js";
import { openAuditFiles } from "../infra/audit-files.js";
import { readAuditLog, type AuditLogEntry } from "../infra/audit-log-reader.js";
import { AuditTailUncovered } from "../core/audit-log-check.js";
import type { AnalyticsStore } from "../infra/clickhouse-analytics.js";
import { archiveReport, makeReport, scheduledWindow, type ComplianceDeps } from "../pipeline/compliance.js";
import { createCasRefs } from "../queues/cas-refs.js";
import { createComplianceStore } from "../queues/compliance-store.js";
import { COMPLIANCE_QUEUE } from "../queues/keys.js";
import type { Runtime } from "./runtime.js";
import type { Settings } from "./settings.js";

/** The audit log as the reconciliation reads it, and the key that signs the reports. */
export interface ComplianceAudit {
  /** Every record from the first leaf, verified as read; absent when DATA_DIR has no audit log. */
  readonly log?: () => AsyncIterable<{ readonly record: AuditRecord }>;
  readonly signingKey: () => Promise<{ readonly kid: string; readonly seed: Uint8Array }>;
}

/**
 * The audit side of the reconciliation under DATA_DIR: the log, verified as it is read
 * (readAuditLog), and its key (the same key and kid as its checkpoints; made on first use, as the
 * appender would).
 */
export function complianceAuditFor(settings: Settings): ComplianceAudit {
  const { env, dataDir } = settings;
  const files = openAuditFiles(dataDir, {
    ...(env.AUDIT_SIGNING_KEY === undefined ? {} : { signingKey: env.AUDIT_SIGNING_KEY }),
    ...(env.AUDIT_LOG_ID === undefined ? {} : { logId: env.AUDIT_LOG_ID }),
  });
  return {
    log: () => coveredRecords(dataDir, env.AUDIT_SEGMENT_SIZE),
    signingKey: async () => {
      const key = await files.signingKey();
      return { kid: key.kid, seed: key.seed };
    },
  };
}

/**
 * The log's records up to its newest checkpoint. A live log's index runs ahead of its checkpoints
 * for up to AUDIT_CHECKPOINT_MS (the appender commits, then signs): those newest leaves are not yet
 * in the signed log, so they count as not in it (their jobs show as missing from the audit log
 * while they are in the window) instead of failing the whole read. Appends during the read cannot
 * make it fail otherwise (readAuditLog reads the checkpoints before the index); any other fault
 * fails the source.
 */
async function* coveredRecords(dataDir: string, segmentSize: number): AsyncGenerator<AuditLogEntry> {
  try {
    yield* readAuditLog(dataDir, { segmentSize });
  } catch (err) {
    if (err instanceof AuditTailUncovered) return;
    throw err;
  }
}

/** The scheduler entry's id: one per deployment, whatever number of pipeline processes upsert it. */
export const COMPLIANCE_SCHEDULER_ID = "reconcile";

/** What the reconciliation reads, from the configuration and the process's parts. */
export function complianceDepsFor(o: {
  readonly env: Env;
  readonly dataDir: string;
  readonly redis: RedisClient;
  readonly clock: Clock;
  readonly ledger: Pick<Ledger, "read">;
  readonly audit: ComplianceAudit;
  /** The analytics store; undefined when analytics are off (the source is reported `off`). */
  readonly analytics: Pick<AnalyticsStore, "jobsInWindow"> | undefined;
}): ComplianceDeps {
  const store = createComplianceStore(o.redis, o.env.REDIS_PREFIX);
  const analytics = o.analytics;
  return {
    ledger: o.ledger,
    ...(o.audit.log ? { auditLog: o.audit.log } : {}),
    ...(analytics ? { analytics: (w: { fromMs: number; toMs: number }) => analytics.jobsInWindow(w) } : {}),
    admissions: (from, to) => readAdmissions(join(o.dataDir, "admissions"), from, to),
    liveJobs: (ids) => store.liveJobs(ids),
    signingKey: o.audit.signingKey,
    clock: o.clock,
    settings: {
      tolerance: o.env.RECONCILE_TOLERANCE,
      lostAfterMs: o.env.RECONCILE_LOST_AFTER_MS,
      maxListed: o.env.RECONCILE_MAX_IDS,
    },
  };
}

/**
 * The scheduled reconciliation of a pipeline process: upserts the job scheduler entry (every
 * COMPLIANCE_EVERY_MS; removed when 0) and runs its jobs, one at a time per process: each reconciles
 * {@link scheduledWindow}, stores the signed report in the CAS (pinned COMPLIANCE_RETENTION_S) and
 * lists it. Closed at shutdown.
 */
export async function startComplianceSchedule(o: {
  readonly env: Env;
  readonly dataDir: string;
  readonly runtime: Runtime;
  readonly logger: Logger;
  readonly clock: Clock;
  readonly blobs: Pick<BlobStore, "put">;
  /** Connections for the queue (and the reports' list) and for the worker's blocking reads. */
  readonly queueConnection: RedisClient;
  readonly workerConnection: RedisClient;
  readonly deps: ComplianceDeps;
}): Promise<void> {
  const { env, logger } = o;
  const prefix = env.REDIS_PREFIX;
  const queue = new Queue(COMPLIANCE_QUEUE, {
    connection: o.queueConnection,
    prefix,
    defaultJobOptions: { removeOnComplete: { count: 100 }, removeOnFail: { count: 100 } },
  });
  o.runtime.defer("compliance queue", () => queue.close());
  if (env.COMPLIANCE_EVERY_MS > 0) {
    await queue.upsertJobScheduler(
      COMPLIANCE_SCHEDULER_ID,
      { every: env.COMPLIANCE_EVERY_MS },
      { name: COMPLIANCE_SCHEDULER_ID },
    );
  } else {
    await queue.removeJobScheduler(COMPLIANCE_SCHEDULER_ID);
  }
  const archive = {
    blobs: o.blobs,
    pins: createCasRefs(o.queueConnection, prefix),
    store: createComplianceStore(o.queueConnection, prefix),
    retentionMs: env.COMPLIANCE_RETENTION_S * 1000,
    clock: o.clock,
  };
  const worker = new Worker(
    COMPLIANCE_QUEUE,
    async () => {
      const { fromMs, toMs } = scheduledWindow(o.clock(), env.COMPLIANCE_HOURS, env.COMPLIANCE_SETTLE_MS);
      const report = await makeReport(o.deps, fromMs, toMs);
      const digest = await archiveReport(report, archive);
      // the journal is kept as long as the reports (older windows cannot be judged for lost jobs)
      const pruned = await pruneAdmissions(join(o.dataDir, "admissions"), o.clock() - archive.retentionMs);
      if (pruned.length > 0) logger.info({ days: pruned }, "admissions journal: old days removed");
      const fields = {
        digest,
        from: rfc3339(fromMs),
        to: rfc3339(toMs),
        max_discrepancy: report.max_discrepancy,
        mismatched_jobs: report.mismatched_jobs,
        lost: report.lost.count,
      };
      if (report.flagged) logger.warn(fields, "compliance report flagged");
      else logger.info(fields, "compliance report: ledger, audit log and analytics agree");
      return digest;
    },
    {
      connection: o.workerConnection,
      prefix,
      concurrency: 1,
      lockDuration: env.PIPELINE_LOCK_MS,
      stalledInterval: env.PIPELINE_LOCK_MS,
    },
  );
  worker.on("failed", (job, err) => logger.error({ err, job: job?.id }, "compliance run failed"));
  worker.on("error", (err) => logger.warn({ err: err.message }, "compliance worker connection error"));
  await worker.waitUntilReady();
  o.runtime.defer("compliance worker", () => worker.close());
}
