// A Bull Board queue adapter over the scheduler's Redis structures (as Bull Board's own BullMQ and
// Bull adapters are over theirs), so the board shows the scheduler's queue beside the BullMQ ones:
// queued jobs in their fair-share order with positions, held and backoff jobs, running attempts and
// the newest finished jobs. Read-only: every change the board could ask for is refused.
import { BaseAdapter } from "@bull-board/api/dist/queueAdapters/base.js";
import type {
  AppJobScheduler,
  JobCounts,
  JobSchedulerUpdateResult,
  JobStatus,
  QueueJob,
  QueueMetrics,
  Status,
} from "@bull-board/api/dist/types.js";
import type { RedisClient } from "../infra/redis-client.js";
import { isJobId } from "../core/ids.js";
import type { BoardReads } from "../queues/board-reads.js";
import { SCHEDULER_STATUSES, STATUS_VIEWS, toQueueJob, type SchedulerStatus } from "./scheduler-job.js";

/** The scheduler queue's name on the board. */
export const SCHEDULER_QUEUE_NAME = "scheduler";

export interface SchedulerAdapterDeps {
  readonly reads: BoardReads;
  /** For the board's Redis panel (INFO). */
  readonly redis: RedisClient;
  /** The BullMQ prefix of the deployment (REDIS_PREFIX): the queue's qualified name. */
  readonly prefix: string;
}

function refused(): never {
  throw new Error("the scheduler queue is read-only on the board");
}

const isSchedulerStatus = (s: string): s is SchedulerStatus => Object.hasOwn(STATUS_VIEWS, s);

export class SchedulerAdapter extends BaseAdapter {
  constructor(private readonly deps: SchedulerAdapterDeps) {
    super("bullmq", {
      readOnlyMode: true,
      allowRetries: false,
      displayName: "scheduler",
      description:
        "Jobs as the scheduler keeps them: waiting = the fair-share order (position = GET /jobs/{id}), " +
        "paused = held at the tenant's running limit, delayed = retry backoff, active = running attempts, " +
        "completed/failed = the newest finished jobs",
    });
  }

  getName(): string {
    return SCHEDULER_QUEUE_NAME;
  }

  /** Bull Board's flow lookup asks BullMQ-type adapters for this; no flows run through the scheduler. */
  getQueueQualifiedName(): string {
    return `${this.deps.prefix}:${SCHEDULER_QUEUE_NAME}`;
  }

  getFlowProducer(): Promise<null> {
    return Promise.resolve(null);
  }

  getStatuses(): Status[] {
    return ["latest", ...SCHEDULER_STATUSES];
  }

  getJobStatuses(): JobStatus[] {
    return [...SCHEDULER_STATUSES];
  }

  async getJobCounts(): Promise<JobCounts> {
    const c = await this.deps.reads.counts();
    const counts: JobCounts = {};
    for (const status of SCHEDULER_STATUSES) counts[status] = c[STATUS_VIEWS[status]];
    return counts;
  }

  /** Each status's page in the order asked; a job listed by two of them (`latest`) appears once. */
  async getJobs(statuses: JobStatus[], start = 0, end = start + 9): Promise<QueueJob[]> {
    const seen = new Set<string>();
    const out: QueueJob[] = [];
    for (const status of statuses) {
      if (!isSchedulerStatus(status)) continue;
      for (const b of await this.deps.reads.page(STATUS_VIEWS[status], start, end)) {
        if (seen.has(b.job.id)) continue;
        seen.add(b.job.id);
        out.push(toQueueJob(b));
      }
    }
    return out;
  }

  async getJob(id: string): Promise<QueueJob | undefined> {
    // anything but a job id is no job (and costs no read)
    if (!isJobId(id)) return undefined;
    const b = await this.deps.reads.job(id);
    return b === undefined ? undefined : toQueueJob(b);
  }

  getJobLogs(): Promise<string[]> {
    return Promise.resolve([]);
  }

  getMetrics(): Promise<QueueMetrics> {
    return Promise.resolve({ meta: { count: 0, prevTS: 0, prevCount: 0 }, data: [], count: 0 });
  }

  getRedisInfo(): Promise<string> {
    return this.deps.redis.info();
  }

  isPaused(): Promise<boolean> {
    return Promise.resolve(false);
  }

  getJobSchedulers(): Promise<Omit<AppJobScheduler, "queueName">[]> {
    return Promise.resolve([]);
  }

  getJobSchedulersCount(): Promise<number> {
    return Promise.resolve(0);
  }

  getGlobalConcurrency(): Promise<number | null> {
    return Promise.resolve(null);
  }

  // Changes: never (the scheduler owns its jobs; a change from the board would bypass its scripts).
  clean(): Promise<void> {
    refused();
  }
  addJob(): Promise<QueueJob> {
    refused();
  }
  pause(): Promise<void> {
    refused();
  }
  resume(): Promise<void> {
    refused();
  }
  empty(): Promise<void> {
    refused();
  }
  obliterate(): Promise<void> {
    refused();
  }
  promoteAll(): Promise<void> {
    refused();
  }
  removeJobScheduler(): Promise<boolean> {
    refused();
  }
  updateJobScheduler(): Promise<JobSchedulerUpdateResult> {
    refused();
  }
  runJobSchedulerNow(): Promise<QueueJob | "not-found"> {
    refused();
  }
  setGlobalConcurrency(): Promise<void> {
    refused();
  }
}
