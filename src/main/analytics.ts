// The analytics stage of a pipeline process (README "Analytics"): which ClickHouse it writes to —
// CLICKHOUSE_URL, else the embedded clickhouse-server (started here, or the one a start on the same
// DATA_DIR runs), else none — the schema, the `analytics` queue and its worker. With no ClickHouse the
// stage is off with one warning, and the relay adds no analytics job (no queue without a consumer).
import { Queue, type QueueOptions } from "bullmq";
import type { RedisClient } from "../infra/redis-client.js";
import type { Logger } from "pino";
import type { AnalyticsSink } from "../core/analytics-event.js";
import type { Tiers } from "../core/tiers.js";
import { createAnalyticsStore, type AnalyticsStore } from "../infra/clickhouse-analytics.js";
import {
  findClickHouseServer,
  runningEmbeddedClickHouse,
  startEmbeddedClickHouse,
} from "../infra/clickhouse-server.js";
import { ANALYTICS_ATTEMPTS, ANALYTICS_BACKOFF, startAnalyticsWorker } from "../pipeline/analytics.js";
import type { FollowUpQueue } from "../pipeline/relay.js";
import { ANALYTICS_QUEUE } from "../queues/keys.js";
import type { Runtime } from "./runtime.js";
import type { Settings } from "./settings.js";

interface AnalyticsContext {
  readonly settings: Settings;
  readonly runtime: Runtime;
  readonly logger: Logger;
}

/**
 * The analytics store of this process, closed at shutdown; undefined when analytics are off
 * (ANALYTICS=off, or no CLICKHOUSE_URL and no clickhouse-server to embed — warned once). With
 * `embed`, an embedded server is started when none runs for DATA_DIR (and stopped at shutdown);
 * without, only a running one is used. The schema is created when the server first answers.
 */
export async function openAnalyticsStore(
  ctx: AnalyticsContext,
  opts: {
    readonly embed: boolean;
    /** Where the server binary is looked for; default {@link findClickHouseServer} (tests: none). */
    readonly findServer?: () => string | undefined;
  },
): Promise<AnalyticsStore | undefined> {
  const { env, dataDir } = ctx.settings;
  const log = ctx.logger.child({ part: "analytics" });
  if (env.ANALYTICS === "off") {
    log.info("analytics off (ANALYTICS=off)");
    return undefined;
  }
  let target: { url: string; username?: string; password?: string } | undefined;
  if (env.CLICKHOUSE_URL !== undefined) {
    target = {
      url: env.CLICKHOUSE_URL,
      ...(env.CLICKHOUSE_USER === undefined ? {} : { username: env.CLICKHOUSE_USER }),
      ...(env.CLICKHOUSE_PASSWORD === undefined ? {} : { password: env.CLICKHOUSE_PASSWORD }),
    };
  } else if (!opts.embed) {
    target = await runningEmbeddedClickHouse(dataDir);
    if (target === undefined) return undefined;
  } else {
    const binary = (opts.findServer ?? findClickHouseServer)();
    if (binary === undefined) {
      log.warn(
        "analytics off: no CLICKHOUSE_URL and no clickhouse-server on the PATH or in /usr/sbin " +
          "(apt-get install clickhouse-server, or set CLICKHOUSE_URL); finished jobs are billed but not sent to analytics",
      );
      return undefined;
    }
    try {
      const embedded = await startEmbeddedClickHouse({ dataDir, binary });
      ctx.runtime.defer("embedded clickhouse", () => embedded.stop());
      log.info({ url: embedded.url, reused: !embedded.owned }, "embedded clickhouse-server");
      target = embedded;
    } catch (err) {
      log.warn(
        { err: (err as Error).message },
        "analytics off: the embedded clickhouse-server did not start",
      );
      return undefined;
    }
  }
  const store = createAnalyticsStore({ ...target, database: env.CLICKHOUSE_DATABASE });
  ctx.runtime.defer("analytics store", () => store.close());
  try {
    await store.ensureSchema();
  } catch (err) {
    // the stage stays on: rows wait in the queue, and the schema is made before the first insert
    log.warn(
      { err: (err as Error).message },
      "ClickHouse not reachable at start; analytics rows wait in the queue",
    );
  }
  return store;
}

/** The store as the worker writes to it: the schema is (re)made before an insert until once it worked. */
function schemaFirst(store: AnalyticsStore): AnalyticsSink {
  let ready = false;
  return {
    async insert(rows) {
      if (!ready) {
        await store.ensureSchema();
        ready = true;
      }
      return store.insert(rows);
    },
  };
}

/**
 * Starts the analytics stage of a pipeline process: the store ({@link openAnalyticsStore}, embedding a
 * server when needed), the `analytics` queue and its worker. Returns what the relay needs to add
 * analytics jobs (and the store, for readers in the same process), or undefined when the stage is off.
 */
export async function startAnalytics(
  ctx: AnalyticsContext & { readonly tiers: Tiers },
  redis: { readonly queue: RedisClient; readonly worker: RedisClient; readonly prefix: string },
  queueOptions: Pick<QueueOptions, "defaultJobOptions">,
): Promise<
  { readonly queue: FollowUpQueue; readonly tiers: Tiers; readonly store: AnalyticsStore } | undefined
> {
  const store = await openAnalyticsStore(ctx, { embed: true });
  if (store === undefined) return undefined;
  const { env } = ctx.settings;
  const queue = new Queue(ANALYTICS_QUEUE, {
    connection: redis.queue,
    prefix: redis.prefix,
    defaultJobOptions: {
      ...queueOptions.defaultJobOptions,
      attempts: ANALYTICS_ATTEMPTS,
      backoff: { type: ANALYTICS_BACKOFF },
      removeOnFail: false,
    },
  });
  ctx.runtime.defer("analytics queue", () => queue.close());
  const worker = await startAnalyticsWorker({
    sink: schemaFirst(store),
    reachable: () => store.ping(),
    connection: redis.worker,
    prefix: redis.prefix,
    batch: env.ANALYTICS_BATCH,
    flushMs: env.ANALYTICS_FLUSH_MS,
    retryMaxMs: env.ANALYTICS_RETRY_MAX_MS,
    lockMs: env.PIPELINE_LOCK_MS,
    logger: ctx.logger,
  });
  ctx.runtime.defer("analytics worker", () => worker.close());
  return { queue, tiers: ctx.tiers, store };
}
