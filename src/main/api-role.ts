// The api role: Redis connections (fail-fast profile), event hub, Hono app on HOST:PORT.
import { join } from "node:path";
import { serve, type ServerType } from "@hono/node-server";
import type { AddressInfo } from "node:net";
import { createRandomIds } from "../core/ids.js";
import { createJobStore } from "../queues/job-store.js";
import { createIdempotencyStore } from "../queues/idempotency-store.js";
import { createRateLimitStore } from "../queues/rate-limit-store.js";
import { createBackendDirectory } from "../queues/backend-directory.js";
import { createWorkerSlots } from "../queues/worker-slots.js";
import { createCostModel } from "../core/cost.js";
import { createApp } from "../api/app.js";
import { createBodyReader } from "../api/body.js";
import { createAuthenticator } from "../api/auth.js";
import { createApiKeyVerifier } from "../api/api-key-auth.js";
import { listenForRevocations } from "../api/api-key-revocations.js";
import { createTokenRouter } from "../api/token-router.js";
import { createApiKeyStore } from "../queues/api-key-store.js";
import { createRedis, closeRedis } from "../infra/redis.js";
import { createRemoteKeySet, type RemoteKeySet } from "../api/jwks-remote.js";
import { createEventHub, type EventHub } from "../api/event-hub.js";
import { createCapacityView } from "../api/capacity.js";
import { createPresenter } from "../api/present.js";
import { watchRedisMemory } from "../infra/redis-memory.js";
import { startCasCollector } from "./cas-gc.js";
import { createOutboundHttp } from "../infra/outbound-http.js";
import { createImageInspector } from "../infra/image-inspector.js";
import { connectRole, type RoleContext } from "./role-context.js";
import { httpServerOptions } from "./http-timeouts.js";
import { publishRunFile } from "./run-files.js";
import { webhookApiFor } from "./webhooks.js";
import { readCaFile } from "./ca-file.js";
import { schedulerFor, type Keys } from "./settings.js";
import { loadApiKeyPepper, NO_PEPPER_MESSAGE } from "./api-key-pepper.js";
import { createLedgerFiles } from "../infra/ledger-files.js";
import { createUsageStore } from "../queues/usage-store.js";
import { createOutboxStore } from "../queues/outbox-store.js";
import { METRICS_CONTENT_TYPE } from "../infra/metrics-exposition.js";
import { fleetExposition } from "./metrics.js";

export interface ApiHandle {
  readonly url: string;
  readonly port: number;
  /** The process's event hub (tests check that closed streams free their listeners). */
  readonly hub: EventHub;
  /** The Hono app's fetch, for in-process measurements. */
  readonly fetch: (req: Request) => Response | Promise<Response>;
}

export async function startApiRole(ctx: RoleContext & { keys: Keys }): Promise<ApiHandle> {
  const { env } = ctx.settings;
  const logger = ctx.logger.child({ role: "api" });
  const extraCa = readCaFile(env.OUTBOUND_CA_FILE);
  const { redis, subscriber } = await connectRole(ctx, "api");

  // Script calls in capped pipelines: docs/decisions.md "Script pipelines" (measured: bench/enqueue.ts).
  const scheduler = schedulerFor(ctx.settings, redis, ctx.clock, env.REDIS_PIPELINE_MAX);
  const store = createJobStore(redis, env.REDIS_PREFIX, { pipelineMax: env.REDIS_PIPELINE_MAX });
  const idempotency = createIdempotencyStore({
    redis,
    prefix: env.REDIS_PREFIX,
    clock: ctx.clock,
    pipelineMax: env.REDIS_PIPELINE_MAX,
  });
  const directory = createBackendDirectory(redis, env.REDIS_PREFIX, ctx.clock);
  const cost = createCostModel(ctx.settings.catalog, {
    image: env.DEFAULT_SERVICE_MS,
    video: env.DEFAULT_VIDEO_SERVICE_MS,
  });
  const capacity = createCapacityView({
    directory,
    store,
    workerSlots: createWorkerSlots(redis, env.REDIS_PREFIX, ctx.clock),
    cost,
    clock: ctx.clock,
    cacheMs: 1_000,
    staleMs: Math.max(10_000, env.HEALTH_INTERVAL_MS * 5),
  });
  const hub = createEventHub(subscriber, scheduler.keys.eventChannel);
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

  const jwks = await jwksKeySet(ctx, logger);
  const jwtAuthenticator = createAuthenticator({
    secret: ctx.keys.jwt,
    publicKeys: ctx.keys.publicKeys ?? [],
    ...(jwks === undefined ? {} : { jwks }),
    tiers: Object.keys(ctx.settings.tiers),
    clock: ctx.clock,
    maxTtlS: env.JWT_MAX_TTL_S,
    ...(env.JWT_ISSUER ? { issuer: env.JWT_ISSUER } : {}),
    ...(env.JWT_AUDIENCE ? { audience: env.JWT_AUDIENCE } : {}),
  });
  // API keys (README "API keys"): revocations arrive on a subscriber connection of their own.
  const pepper = await loadApiKeyPepper(ctx.settings);
  if (pepper === undefined) logger.info(NO_PEPPER_MESSAGE);
  const tierNames = Object.keys(ctx.settings.tiers);
  const apiKeys = createApiKeyVerifier({
    store: createApiKeyStore({ redis, prefix: env.REDIS_PREFIX, clock: ctx.clock, tiers: tierNames }),
    pepper,
    tiers: tierNames,
    clock: ctx.clock,
    recheckMs: env.API_KEY_RECHECK_MS,
    lastUsedMs: env.API_KEY_LAST_USED_MS,
    onTouchError: (err) => logger.debug({ err }, "API key last-used write failed"),
  });
  const keySubscriber = createRedis(ctx.redisUrl, "subscriber", "rg-api-keys-sub");
  ctx.runtime.defer("api key subscriber", () => closeRedis(keySubscriber));
  const revocations = listenForRevocations(keySubscriber, scheduler.keys.apiKeyChannel, apiKeys);
  await revocations.start();
  ctx.runtime.defer("api key revocations", () => revocations.stop());
  const authenticator = createTokenRouter(jwtAuthenticator, apiKeys);

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

  const outbox = createOutboxStore(redis, env.REDIS_PREFIX);
  let publicUrl = env.PUBLIC_URL ?? "";
  const app = createApp({
    ledger,
    usage,
    outbox,
    redis,
    scheduler,
    store,
    idempotency,
    rateLimits: createRateLimitStore({ redis, prefix: env.REDIS_PREFIX }),
    hub,
    blobs: ctx.blobs,
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
    webhooks: webhookApiFor(ctx, redis),
    metrics: ctx.metrics.api(),
    metricsRoute: {
      token: env.METRICS_TOKEN,
      contentType: METRICS_CONTENT_TYPE,
      text: fleetExposition({ ...ctx, redis, prefix: env.REDIS_PREFIX, store, capacity, outbox, logger }),
    },
  });

  const server: ServerType = await new Promise((resolve, reject) => {
    const s = serve(
      {
        fetch: app.fetch,
        hostname: env.HOST,
        port: env.PORT,
        serverOptions: httpServerOptions({
          headersMs: env.HTTP_HEADERS_TIMEOUT_MS,
          requestMs: env.HTTP_REQUEST_TIMEOUT_MS,
          keepAliveMs: env.HTTP_KEEP_ALIVE_TIMEOUT_MS,
        }),
      },
      () => resolve(s),
    );
    s.once("error", reject);
  });
  const port = (server.address() as AddressInfo).port;
  publicUrl ||= `http://${env.HOST.includes(":") ? `[${env.HOST}]` : env.HOST}:${port}`;
  ctx.runtime.defer("http server", async () => {
    const closed = new Promise<void>((r) => server.close(() => r()));
    // Streams (SSE, sync waits) would hold the close forever: end them after a short grace.
    const t = setTimeout(
      () => (server as unknown as { closeAllConnections(): void }).closeAllConnections(),
      2_000,
    );
    await closed;
    clearTimeout(t);
  });
  publishRunFile(ctx.runtime, ctx.settings.dataDir, "api.url", publicUrl);
  logger.info({ url: publicUrl }, "api listening");
  return { url: publicUrl, port, hub, fetch: (req) => app.fetch(req) };
}

/**
 * The JWKS_URL key set, fetched once before the API listens; an endpoint that fails then is logged
 * and retried when a token needs it (HS256 and local keys work meanwhile).
 */
async function jwksKeySet(
  ctx: RoleContext,
  logger: RoleContext["logger"],
): Promise<RemoteKeySet | undefined> {
  const { env } = ctx.settings;
  if (env.JWKS_URL === undefined) return undefined;
  const jwks = createRemoteKeySet({
    url: new URL(env.JWKS_URL),
    cooldownMs: env.JWKS_COOLDOWN_MS,
    maxAgeMs: env.JWKS_CACHE_MAX_AGE_MS,
    timeoutMs: env.JWKS_TIMEOUT_MS,
    clock: ctx.clock,
  });
  ctx.runtime.defer("jwks", () => jwks.close());
  await jwks.refresh();
  const status = jwks.status();
  if (status.last_error !== null) logger.warn({ jwks: status }, "JWKS_URL could not be fetched at start");
  else logger.info({ jwks: { url: status.url, keys: status.keys } }, "JWKS keys loaded");
  return jwks;
}
