// The scheduler's jobs as Bull Board shows jobs: which Bull Board status shows which scheduler view
// (the one mapping; README "Admin UI (Bull Board)"), and a board job as Bull Board's QueueJob.
import type { JobState, JobStatus, QueueJob, QueueJobJson } from "@bull-board/api/dist/types.js";
import { formatFamilyModel } from "../core/model-route.js";
import { toPublicJob } from "../core/job.js";
import { rfc3339 } from "../core/time.js";
import type { BoardJob, BoardView } from "../queues/board-reads.js";

/**
 * Bull Board status → the scheduler view it lists. `waiting` is the whole order (held jobs and jobs
 * in retry backoff keep their place in it), `paused` and `delayed` list those two subsets again.
 */
export const STATUS_VIEWS = {
  active: "running",
  waiting: "queued",
  paused: "held",
  delayed: "backoff",
  completed: "completed",
  failed: "failed",
} as const satisfies Partial<Record<JobStatus, BoardView>>;

export type SchedulerStatus = keyof typeof STATUS_VIEWS;
export const SCHEDULER_STATUSES = Object.keys(STATUS_VIEWS) as SchedulerStatus[];

/** The Bull Board state of one job: its own status, held and backoff for queued ones. */
export function stateOf(b: BoardJob): JobState {
  switch (b.job.status) {
    case "queued":
      return b.held ? "paused" : b.notBefore !== undefined ? "delayed" : "waiting";
    case "running":
      return "active";
    case "complete":
      return "completed";
    case "error":
    case "cancelled":
      return "failed";
  }
}

/** The line a job's card shows: position, tenant, model and task, priority, and what holds it. */
function nameOf(b: BoardJob): string {
  const { job } = b;
  const what = `${job.customerId} · ${formatFamilyModel(job.family, job.model)} ${job.task}`;
  switch (job.status) {
    case "queued":
      return `#${b.position} ${what} · ${job.priority}${b.held ? " · held" : ""}${b.notBefore !== undefined ? " · retry backoff" : ""}`;
    case "running":
      return `${what} · ${job.backend ?? "?"} · attempt ${job.attempts}`;
    default:
      return `${what} · ${job.status}`;
  }
}

/** Members of the public Job document (API.md §3) a card shows below where the job stands. */
const SHOWN_MEMBERS = [
  "created_at",
  "started_at",
  "completed_at",
  "gpu_ms",
  "error",
  "attempt_log",
  "request",
];

/**
 * What the board shows of a job (`data`, before redaction): where it stands — position, tenant,
 * priority, held, backend and attempt — then the times, attempts and request of the public Job
 * document with the admins' attempt details (core/job.ts toPublicJob).
 */
function dataOf(b: BoardJob): Record<string, unknown> {
  const { job } = b;
  const queued = job.status === "queued";
  const doc = toPublicJob(job, { urlFor: (digest) => digest, position: b.position, admin: true });
  const shown: Record<string, unknown> = {};
  for (const member of SHOWN_MEMBERS) {
    const value = doc[member];
    if (value !== undefined && !(Array.isArray(value) && value.length === 0)) shown[member] = value;
  }
  return {
    ...(queued ? { position: b.position } : {}),
    tenant: job.customerId,
    priority: job.priority,
    ...(queued ? { held: b.held ? "concurrency_limit" : false } : {}),
    ...(b.notBefore !== undefined ? { retry_not_before: rfc3339(b.notBefore) } : {}),
    ...(job.backend !== undefined && !queued ? { backend: job.backend } : {}),
    attempt: job.attempts,
    status: job.status,
    model: formatFamilyModel(job.family, job.model),
    task: job.task,
    format: job.format,
    mode: job.mode,
    ...shown,
  };
}

/** The JSON Bull Board reads of a job (QueueJobJson). */
export function jobJsonOf(b: BoardJob): QueueJobJson {
  const { job } = b;
  const failed = job.status === "error" || job.status === "cancelled";
  return {
    id: job.id,
    name: nameOf(b),
    progress: Math.round(job.progress * 100),
    attemptsMade: job.attempts,
    timestamp: job.createdAt,
    processedOn: job.startedAt ?? null,
    finishedOn: job.completedAt ?? null,
    processedBy: job.status === "queued" ? null : (job.backend ?? null),
    delay: b.notBefore !== undefined ? Math.max(0, b.notBefore - job.createdAt) : 0,
    failedReason: failed && job.error ? `${job.error.code}: ${job.error.message}` : "",
    stacktrace: [],
    data: dataOf(b),
    returnvalue:
      job.status === "complete"
        ? {
            output: job.output,
            outputs: job.outputs ?? (job.output ? [job.output] : []),
            content_type: job.contentType,
            gpu_ms: job.gpuMs,
          }
        : null,
    opts: {
      priority: job.priority,
      mode: job.mode,
      ...(job.ttlAt !== undefined ? { ttl_at: rfc3339(job.ttlAt) } : {}),
    },
  };
}

/** Every change a board might ask of a scheduler job is refused: the board is read-only. */
function readOnly(): Promise<never> {
  return Promise.reject(new Error("the scheduler queue is read-only on the board"));
}

/** A board job as Bull Board's QueueJob (read-only: promote, remove and retry refuse). */
export function toQueueJob(b: BoardJob): QueueJob {
  const json = jobJsonOf(b);
  return {
    opts: { delay: json.delay },
    toJSON: () => json,
    getState: () => Promise.resolve(stateOf(b)),
    promote: readOnly,
    remove: readOnly,
    retry: readOnly,
  };
}
