// What a 202 promises with REDIS_WAIT_REPLICAS (README "Redis high availability"): the job was on the
// primary and on that many replicas before the answer, so a failover to any of them keeps it.
import { AppError } from "../core/errors.js";
import type { ReplicaWait } from "../queues/replica-wait.js";

export interface ReplicationCheck {
  readonly wait: ReplicaWait;
  /**
   * With pools (docs/decisions.md "Pools"): the wait of a job's pool, whose keys (and mark) are on
   * the pool's own master under a Cluster; absent: `wait` for every job.
   */
  readonly waitOf?: (jobId: string) => ReplicaWait;
  /** REDIS_WAIT_REPLICAS (≥ 1). */
  readonly replicas: number;
  /** REDIS_WAIT_MS. */
  readonly timeoutMs: number;
}

/**
 * Returns once `check.replicas` replicas hold job `jobId` (it exists on the primary when this is
 * called); at once without a check (REDIS_WAIT_REPLICAS=0).
 * @throws AppError 503 `unavailable` when fewer acknowledged within REDIS_WAIT_MS, or Redis could not
 *   be asked: the job exists but a failover now could lose it. The answer names it (`X-Job-Id`,
 *   `details.job_id`, `details.outcome: "unreplicated"`); a resend with the same Idempotency-Key
 *   (`keyed`) is answered for this job, with this check again — never a second job.
 */
export async function confirmReplicated(
  check: ReplicationCheck | undefined,
  jobId: string,
  keyed: boolean,
): Promise<void> {
  if (check === undefined) return;
  const wait = check.waitOf?.(jobId) ?? check.wait;
  const acked = await wait().catch(() => -1);
  if (acked >= check.replicas) return;
  const how = keyed
    ? `resend with the same Idempotency-Key: it answers 202 for job ${jobId} once replicas hold it (never a second job)`
    : `GET /jobs/${jobId} tells whether it still exists (resending this request would submit a second job)`;
  throw new AppError(
    "unavailable",
    `job ${jobId} was stored on the primary, but ${acked < 0 ? "the replicas could not be asked" : `${acked} of ${check.replicas} replica(s) confirmed it within ${check.timeoutMs} ms`}: a failover now could lose it; ${how}`,
    {
      details: {
        job_id: jobId,
        outcome: "unreplicated",
        replicas: Math.max(0, acked),
        wanted: check.replicas,
      },
      headers: { "retry-after": "1", "x-job-id": jobId },
    },
  );
}
