// The api role: Redis connections (fail-fast profile), event hub, Hono app on HOST:PORT.
import { serve, type ServerType } from "@hono/node-server";
import type { AddressInfo } from "node:net";
import { createRandomIds } from "../core/ids.js";
import { createJobStore } from "../queues/job-store.js";
import { createBackendDirectory } from "../queues/backend-directory.js";
import { createApp } from "../api/app.js";
import { createBodyReader } from "../api/body.js";
import { createAuthenticator } from "../api/auth.js";
import { createEventHub, type EventHub } from "../api/event-hub.js";
import { createCapacityView } from "../api/capacity.js";
import { createPresenter } from "../api/present.js";
import { connectRole, type RoleContext } from "./role-context.js";
import { publishRunFile } from "./run-files.js";
import { schedulerFor, type Keys } from "./settings.js";

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
  const { redis, subscriber } = await connectRole(ctx, "api");

  // Script calls in capped pipelines: docs/decisions.md "Script pipelines" (measured: bench/enqueue.ts).
  const scheduler = schedulerFor(ctx.settings, redis, ctx.clock, env.REDIS_PIPELINE_MAX);
  const store = createJobStore(redis, env.REDIS_PREFIX, { pipelineMax: env.REDIS_PIPELINE_MAX });
  const directory = createBackendDirectory(redis, env.REDIS_PREFIX, ctx.clock);
  const capacity = createCapacityView({
    directory,
    store,
    clock: ctx.clock,
    cacheMs: 1_000,
    staleMs: Math.max(10_000, env.HEALTH_INTERVAL_MS * 5),
    defaultServiceMs: env.DEFAULT_SERVICE_MS,
  });
  const hub = createEventHub(subscriber, scheduler.keys.eventChannel);
  await hub.start();
  ctx.runtime.defer("event hub", () => hub.stop());

  // ttl expiry also runs here, so queued jobs expire on time even while no worker is running
  const expiry = setInterval(() => {
    scheduler.expire().catch((err: unknown) => logger.debug({ err }, "ttl expiry failed"));
  }, env.STALLED_INTERVAL_MS);
  expiry.unref();
  ctx.runtime.defer("ttl expiry", () => clearInterval(expiry));

  const authenticator = createAuthenticator({
    secret: ctx.keys.jwt,
    tiers: Object.keys(ctx.settings.tiers),
    clock: ctx.clock,
    ...(env.JWT_ISSUER ? { issuer: env.JWT_ISSUER } : {}),
    ...(env.JWT_AUDIENCE ? { audience: env.JWT_AUDIENCE } : {}),
  });

  let publicUrl = env.PUBLIC_URL ?? "";
  const app = createApp({
    redis,
    scheduler,
    store,
    hub,
    blobs: ctx.blobs,
    catalog: ctx.settings.catalog,
    tiers: ctx.settings.tiers,
    capacity,
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
    clock: ctx.clock,
    ids: createRandomIds(),
    logger,
    config: {
      syncBudgetMs: env.SYNC_BUDGET_MS,
      minTtlS: env.MIN_TTL_S,
      maxTtlS: 86_400,
      heartbeatMs: env.SSE_HEARTBEAT_MS,
      positionPollMs: 1_000,
      webhookAllowPrivate: env.WEBHOOK_ALLOW_PRIVATE,
      retentionS: env.JOB_RETENTION_S,
      urlKey: ctx.keys.objectUrl,
    },
    accepting: () => !ctx.runtime.stopping,
  });

  const server: ServerType = await new Promise((resolve, reject) => {
    const s = serve({ fetch: app.fetch, hostname: env.HOST, port: env.PORT }, () => resolve(s));
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
