// The admin face of a role (api, admin): Bull Board over the scheduler (our adapter) and the BullMQ
// queues — `render` attempts and the follow-up queues — with its login, as one app for /admin/*.
import { Queue } from "bullmq";
import type { RedisClient } from "../infra/redis-client.js";
import type { Hono } from "hono";
import type { ApiEnv } from "../api/context.js";
import { createAdminServer } from "../admin/admin-app.js";
import { createBoardApp } from "../admin/board.js";
import { SchedulerAdapter } from "../admin/scheduler-adapter.js";
import { BOARD_PATH, LOGOUT_PATH, type AdminAuthenticator } from "../admin/session.js";
import { createBoardReads } from "../queues/board-reads.js";
import type { JobStore } from "../queues/job-store.js";
import { createRandomIds } from "../core/ids.js";
import { ANALYTICS_QUEUE, AUDIT_QUEUE, BILLING_QUEUE, RENDER_QUEUE, WEBHOOKS_QUEUE } from "../queues/keys.js";
import type { RoleContext } from "./role-context.js";

/** The BullMQ queues a deployment has, with what the board says of each. */
const BULLMQ_QUEUES: readonly (readonly [string, string])[] = [
  [
    RENDER_QUEUE,
    "Attempts handed to worker slots (job id = <job id>|<fencing token>); order lives in the scheduler",
  ],
  [BILLING_QUEUE, "Finished jobs to bill (one ledger entry per job)"],
  [WEBHOOKS_QUEUE, "Webhook deliveries; failed = dead deliveries (the dead-letter list)"],
  [AUDIT_QUEUE, "Finished jobs' audit records, staged for the audit log's appender (one leaf per job)"],
  [
    ANALYTICS_QUEUE,
    "Finished jobs' rows for ClickHouse, written in batches (they wait here while it is away)",
  ],
];

/**
 * The app that answers every path under /admin (admin-app.ts createAdminServer). `redis` is the
 * role's command connection, for the board's reads; BullMQ's queue handles use `queueRedis` (they
 * write nothing: no queue meta update) and close at shutdown.
 */
export function createAdminFace(
  ctx: RoleContext,
  deps: {
    readonly redis: RedisClient;
    /** The role's connection for BullMQ handles (api-role.ts: kept off `redis`). */
    readonly queueRedis: RedisClient;
    readonly store: JobStore;
    readonly authenticator: AdminAuthenticator;
    readonly logger: RoleContext["logger"];
  },
): Hono<ApiEnv> {
  const { env } = ctx.settings;
  const prefix = env.REDIS_PREFIX;
  const queues = BULLMQ_QUEUES.map(([name, description]) => {
    const queue = new Queue(name, { connection: deps.queueRedis, prefix, skipMetasUpdate: true });
    // The connection's errors (Redis away) come back as the queue's: without a listener BullMQ
    // writes each to stderr with console.error. The board's reads fail on their own and say so.
    queue.on("error", (err) => deps.logger.debug({ err: err.message }, "admin board queue error"));
    return { queue, description };
  });
  ctx.runtime.defer("admin board queues", async () => {
    await Promise.all(queues.map(({ queue }) => queue.close()));
  });
  const board = createBoardApp({
    basePath: BOARD_PATH,
    adapters: [
      new SchedulerAdapter({
        reads: createBoardReads(deps.redis, prefix, deps.store),
        redis: deps.redis,
        prefix,
      }),
    ],
    queues,
    logoutPath: LOGOUT_PATH,
  });
  const publicUrl = env.PUBLIC_URL;
  return createAdminServer({
    logger: deps.logger,
    ids: createRandomIds(),
    auth: deps.authenticator,
    session: {
      ttlS: env.ADMIN_SESSION_TTL_S,
      secure: publicUrl?.startsWith("https:") ?? false,
      ...(publicUrl === undefined ? {} : { publicOrigin: new URL(publicUrl).origin }),
    },
    clock: ctx.clock,
    board,
  });
}
