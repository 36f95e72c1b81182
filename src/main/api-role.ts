// The api role: Redis connections (fail-fast profile), event hub, Hono app on HOST:PORT.
import { createSyncOutputs, withSyncOutputs } from "../queues/sync-outputs.js";
import { join } from "node:path";
import { createRandomIds } from "../core/ids.js";
import { createRateLimitStore } from "../queues/rate-limit-store.js";
import { createCostModel } from "../core/cost.js";
import { createApp } from "../api/app.js";
import type { ApiDeps } from "../api/deps.js";
import { createApiServices } from "../api/services.js";
import type { WsGateway } from "../api/ws/gateway.js";
import { attachWebSockets } from "./websocket.js";
import { createBodyReader } from "../api/body.js";
import { createEventHub, type EventHub } from "../api/event-hub.js";
import { createPresenter } from "../api/present.js";
import { watchRedisMemory } from "../infra/redis-memory.js";
import { startCasCollector } from "./cas-gc.js";
import { createOutboundHttp } from "../infra/outbound-http.js";
import { createImageInspector } from "../infra/image-inspector.js";
import { connectRole, type RoleContext } from "./role-context.js";
import { listenHttp } from "./http-listen.js";
import { publishRunFile } from "./run-files.js";
import { webhookApiFor } from "./webhooks.js";
import { readCaFile } from "./ca-file.js";
import { type Keys } from "./settings.js";
import { apiPoolParts } from "./api-pools.js";
import { poolLimitParts, startLimitsSweeper } from "./pool-limits.js";
import { createRoleAuthenticator } from "./authenticator.js";
import { createAdminFace } from "./admin-face.js";
import { ADMIN_FACE_PATHS } from "../admin/session.js";
import { createLedgerFiles } from "../infra/ledger-files.js";
import { createAdmissionJournal } from "../infra/admission-journal.js";
import { createUsageStore } from "../queues/usage-store.js";
import { createOutboxStore } from "../queues/outbox-store.js";
import { createComplianceStore } from "../queues/compliance-store.js";
import { createAuditStore } from "../queues/audit-store.js";
import { createAuditReads } from "../api/audit-reads.js";
import { readPlaygroundFiles } from "./playground-files.js";
import { METRICS_CONTENT_TYPE } from "../infra/metrics-exposition.js";
import { fleetExposition } from "./metrics.js";
import { closeRedis, waitReady } from "../infra/redis.js";
import { createReplicaWait } from "../queues/replica-wait.js";
import type { ReplicationCheck } from "../api/replicated.js";

export interface ApiHandle {
  readonly url: string;
  readonly port: number;
  /** The process's event hub (tests check that closed streams free their listeners). */
  readonly hub: EventHub;
  /** The WebSocket endpoint (tests read its backpressure counters). */
  readonly ws: Pick<WsGateway, "stats">;
  /** The Hono app's fetch, for in-process measurements. */
  readonly fetch: (req: Request) => Response | Promise<Response>;
  /** The app's registered routes, middleware (method ALL) included: what GET /openapi.json must cover. */
  readonly routes: readonly { readonly method: string; readonly path: string }[];
}

export async function startApiRole(ctx: RoleContext & { keys: Keys }): Promise<ApiHandle> {
  const { env } = ctx.settings;
  const logger = ctx.logger.child({ role: "api" });
  const extraCa = readCaFile(env.OUTBOUND_CA_FILE);
  // Read before any connection opens: a package without its page fails here.
  const playground = readPlaygroundFiles();
  const { redis, subscriber } = await connectRole(ctx, "api");
  // BullMQ's queue handles (the admin board's, /metrics' follow-up queues) get a connection of their
  // own: BullMQ defines its ~65 scripts on the client it is given, and ioredis copies every script of
  // a client into each pipeline it builds (the auto-pipelined commands of requests): 0.3–0.5 ms per
  // pipeline with them on the API's connection (docs/decisions.md "Script pipelines").
  const queueRedis = ctx.redisConnector.connect("api", "rg-api-queues");
  ctx.runtime.defer("api queues redis", () => closeRedis(queueRedis));

  const cost = createCostModel(ctx.settings.catalog, {
    image: env.DEFAULT_SERVICE_MS,
    video: env.DEFAULT_VIDEO_SERVICE_MS,
  });
  // One pool's objects, or each pool's and the facades over them (docs/decisions.md "Pools").
  const limits = poolLimitParts(ctx.settings, redis, ctx.clock, logger);
  const pooled = apiPoolParts(ctx.settings, redis, ctx.clock, cost, limits);
  if (limits) startLimitsSweeper(ctx.settings, limits, ctx.clock, ctx.runtime, logger);
  const { scheduler, store, idempotency, capacity } = pooled;
  const hub = createEventHub(subscriber, pooled.eventChannels, ctx.settles);
  await hub.start();
  ctx.runtime.defer("event hub", () => hub.stop());

  // ttl expiry also runs here, so queued jobs expire on time even while no worker is running; and
  // admissions this process answered "outcome unknown" are settled as soon as Redis answers again
  const expiry = setInterval(() => {
    scheduler.expire().catch((err: unknown) => logger.debug({ err }, "ttl expiry failed"));
    scheduler
      .resolvePending()
      .catch((err: unknown) => logger.debug({ err }, "settling unknown admissions failed"));
  }, env.STALLED_INTERVAL_MS);
  expiry.unref();
  ctx.runtime.defer("ttl expiry", () => clearInterval(expiry));

  // Admissions stop (503) while Redis is near its maxmemory; the rest is left for running jobs.
  const memory = watchRedisMemory(redis, {
    admitMax: env.REDIS_MEMORY_ADMIT_MAX,
    intervalMs: env.REDIS_MEMORY_CHECK_MS,
    logger,
  });
  ctx.runtime.defer("redis memory watch", () => memory.stop());
  startCasCollector(ctx, redis, logger);

  // JWTs and API keys (README "API keys"); the admin board checks its credentials with it too.
  const authenticator = await createRoleAuthenticator(ctx, redis, logger);

  // Customer-given URLs go through this client only (connect-time address checks, no redirects).
  const outbound = { allowPrivate: env.WEBHOOK_ALLOW_PRIVATE, allowedPorts: env.OUTBOUND_ALLOWED_PORTS };
  const outboundHttp = createOutboundHttp({
    policy: outbound,
    connectTimeoutMs: env.OUTBOUND_CONNECT_TIMEOUT_MS,
    timeoutMs: env.INPUT_FETCH_TIMEOUT_MS,
    maxBytes: env.INPUT_IMAGE_MAX_BYTES,
    ...(extraCa === undefined ? {} : { extraCa }),
  });
  ctx.runtime.defer("outbound http", () => outboundHttp.close());

  // The ledger is read here, never written (the pipeline writes it); no file is opened for writing.
  const ledger = createLedgerFiles({ dir: join(ctx.settings.dataDir, "ledger"), writerId: "api-reader" });
  ctx.runtime.defer("billing ledger", () => ledger.close());
  const usage = createUsageStore({
    redis,
    prefix: env.REDIS_PREFIX,
    markerTtlS: env.BILLING_MARKER_TTL_S,
    usageTtlS: env.USAGE_RETENTION_S,
  });

  // Every admission, outside Redis (docs/decisions.md "Compliance"); flushed last, after the server
  // stopped answering (released after it).
  const admissions = createAdmissionJournal({
    dir: join(ctx.settings.dataDir, "admissions"),
    writerId: ctx.metrics.processId.replace(/[^A-Za-z0-9._-]/g, "_"),
    flushMs: env.ADMISSIONS_FLUSH_MS,
    onError: (err) => logger.error({ err }, "admissions journal not written; retried at the next flush"),
  });
  ctx.runtime.defer("admissions journal", () => admissions.close());

  const outbox = createOutboxStore(redis, env.REDIS_PREFIX);
  // Reads of an object also find a sync output still held in Redis (any pool's) until it is written.
  const { pools } = ctx.settings;
  const blobs = withSyncOutputs(
    ctx.blobs,
    createSyncOutputs(
      redis,
      pools.names.map((pool) => pools.prefixOf(env.REDIS_PREFIX, pool)),
    ),
  );
  const auditStore = createAuditStore(redis, env.REDIS_PREFIX);
  const compliance = createComplianceStore(redis, env.REDIS_PREFIX);
  const replication = await replicationCheck(ctx);
  let publicUrl = env.PUBLIC_URL ?? "";
  const apiDeps: ApiDeps = {
    ledger,
    usage,
    outbox,
    admissions,
    // With pools a worker runs one of them and hears only its pool's wake messages: the message is enough.
    ...(ctx.heads && !pooled.views ? { heads: ctx.heads } : {}),
    compliance,
    audit: createAuditReads({
      store: auditStore,
      blobs: ctx.blobs,
      segmentSize: env.AUDIT_SEGMENT_SIZE,
    }),
    redis,
    scheduler,
    store,
    idempotency,
    rateLimits: createRateLimitStore({ redis, prefix: env.REDIS_PREFIX }),
    hub,
    blobs,
    ...(ctx.handover ? { handover: ctx.handover } : {}),
    outboundHttp,
    imageInspector: createImageInspector({
      maxPixels: env.INPUT_IMAGE_MAX_PIXELS,
      concurrency: env.INPUT_DECODE_CONCURRENCY,
    }),
    catalog: ctx.settings.catalog,
    tiers: ctx.settings.tiers,
    capacity,
    cost,
    bodies: createBodyReader({ budgetBytes: env.BODY_BUDGET_BYTES, logger }),
    present: createPresenter({
      publicUrl: () => publicUrl,
      urlKey: ctx.keys.objectUrl,
      outputUrlTtlS: env.OUTPUT_URL_TTL_S,
      clock: ctx.clock,
      capacity,
    }),
    authenticate: (h) => authenticator.authenticate(h),
    peekPrincipal: (h) => authenticator.peek(h),
    authSources: () => authenticator.sources(),
    clock: ctx.clock,
    ids: createRandomIds(),
    ...(pooled.views ? { pools: ctx.settings.pools, poolViews: pooled.views } : {}),
    logger,
    config: {
      syncBudgetMs: env.SYNC_BUDGET_MS,
      syncCancelOnDisconnect: env.SYNC_CANCEL_ON_DISCONNECT,
      minTtlS: env.MIN_TTL_S,
      maxTtlS: 86_400,
      heartbeatMs: env.SSE_HEARTBEAT_MS,
      positionPollMs: 1_000,
      outbound,
      inputImageMaxBytes: env.INPUT_IMAGE_MAX_BYTES,
      inputFetchTimeoutMs: env.INPUT_FETCH_TIMEOUT_MS,
      inputImageBudgetBytes: env.INPUT_IMAGE_BUDGET_BYTES,
      retentionS: env.JOB_RETENTION_S,
      urlKey: ctx.keys.objectUrl,
      idempotencyHoldMs: env.IDEMPOTENCY_HOLD_MS,
      defaultTtlS: env.DEFAULT_TTL_S,
      agingBoundMs: env.AGING_BOUND_S * 1000,
      outputUrlTtlS: env.OUTPUT_URL_TTL_S,
      uploads: {
        key: ctx.keys.upload,
        urlTtlS: env.UPLOAD_URL_TTL_S,
        putTimeoutMs: env.HTTP_REQUEST_TIMEOUT_MS,
        retentionS: env.JOB_RETENTION_S,
      },
    },
    accepting: () => !ctx.runtime.stopping,
    redisNearLimit: () => memory.nearLimit(),
    ...(replication === undefined ? {} : { replication }),
    webhooks: webhookApiFor(ctx, redis),
    playground,
    // Bull Board and its login at /admin (README "Admin UI (Bull Board)").
    admin: {
      paths: ADMIN_FACE_PATHS,
      fetch: createAdminFace(ctx, { redis, queueRedis, store, authenticator, logger }).fetch,
    },
    metrics: ctx.metrics.api(),
    metricsRoute: {
      token: env.METRICS_TOKEN,
      contentType: METRICS_CONTENT_TYPE,
      text: fleetExposition({
        ...ctx,
        redis,
        queueRedis,
        prefix: env.REDIS_PREFIX,
        store,
        capacity,
        outbox,
        audit: auditStore,
        compliance,
        logger,
        ...(pooled.views ? { pools: pooled.views } : {}),
      }),
    },
  };
  // One admission, limiter and image budget for both HTTP and the WebSocket.
  const services = createApiServices(apiDeps);
  const app = createApp(apiDeps, services);

  const { server, port, localUrl } = await listenHttp(ctx, app.fetch);
  publicUrl ||= localUrl;
  const ws = attachWebSockets({ env, runtime: ctx.runtime, server, api: apiDeps, services, redis, logger });
  publishRunFile(ctx.runtime, ctx.settings.dataDir, "api.url", publicUrl);
  logger.info({ url: publicUrl }, "api listening");
  const routes = app.routes.map(({ method, path }) => ({ method, path }));
  return { url: publicUrl, port, hub, ws, fetch: (req) => app.fetch(req), routes };
}

/**
 * REDIS_WAIT_REPLICAS > 0: the WAIT before each 202, on a connection of its own (WAIT blocks its
 * connection), whose command timeout leaves WAIT its REDIS_WAIT_MS; undefined when off.
 */
async function replicationCheck(ctx: RoleContext): Promise<ReplicationCheck | undefined> {
  const { env } = ctx.settings;
  if (env.REDIS_WAIT_REPLICAS === 0) return undefined;
  const redis = ctx.redisConnector.connect("api", "rg-api-wait", {
    commandTimeoutMs: env.REDIS_WAIT_MS + env.REDIS_COMMAND_TIMEOUT_MS,
  });
  ctx.runtime.defer("replica wait redis", () => closeRedis(redis));
  await waitReady(redis, 10_000);
  const { pools } = ctx.settings;
  // One per pool: its mark is under the pool's tag, so the WAIT asks the pool's master (Cluster).
  const waits = new Map(
    pools.names.map((pool) => [
      pool,
      createReplicaWait({
        redis,
        prefix: pools.prefixOf(env.REDIS_PREFIX, pool),
        replicas: env.REDIS_WAIT_REPLICAS,
        timeoutMs: env.REDIS_WAIT_MS,
      }),
    ]),
  );
  const wait = waits.get(pools.names[0]!)!;
  return {
    wait,
    ...(waits.size > 1 ? { waitOf: (jobId: string) => waits.get(pools.ofJob(jobId)) ?? wait } : {}),
    replicas: env.REDIS_WAIT_REPLICAS,
    timeoutMs: env.REDIS_WAIT_MS,
  };
}
