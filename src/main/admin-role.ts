// The admin role alone (`start --roles admin`): Bull Board and its login at /admin, /health and
// /ready, on HOST:PORT. With the api role, the API's app serves the same admin face instead.
import { closeRedis, waitReady } from "../infra/redis.js";
import { createJobStore } from "../queues/job-store.js";
import { createAdminFace } from "./admin-face.js";
import { createRoleAuthenticator } from "./authenticator.js";
import { listenHttp } from "./http-listen.js";
import type { RoleContext } from "./role-context.js";
import { publishRunFile } from "./run-files.js";
import type { Keys } from "./settings.js";

export interface AdminHandle {
  /** PUBLIC_URL, else `http://HOST:PORT`. */
  readonly url: string;
  readonly port: number;
}

export async function startAdminRole(ctx: RoleContext & { keys: Keys }): Promise<AdminHandle> {
  const { env } = ctx.settings;
  const logger = ctx.logger.child({ role: "admin" });
  const redis = ctx.redisConnector.connect("api", "rg-admin");
  ctx.runtime.defer("admin redis", () => closeRedis(redis));
  await waitReady(redis, 10_000);
  const authenticator = await createRoleAuthenticator(ctx, redis, logger);
  const store = createJobStore(redis, env.REDIS_PREFIX, { pipelineMax: env.REDIS_PIPELINE_MAX });

  // No request path here: the board's reads and BullMQ's handles share the one connection.
  const app = createAdminFace(ctx, { redis, queueRedis: redis, store, authenticator, logger });
  app.on(["GET", "HEAD"], "/health", (c) => c.json({ status: "ok" }));
  app.on(["GET", "HEAD"], "/ready", async (c) => {
    const redisOk = await redis.ping().then(
      (r) => r === "PONG",
      () => false,
    );
    const ready = redisOk && !ctx.runtime.stopping;
    if (!ready) c.header("retry-after", "1");
    return c.json(
      { status: ready ? "ready" : "unavailable", redis: redisOk ? "ok" : "down" },
      ready ? 200 : 503,
    );
  });

  const { port, localUrl } = await listenHttp(ctx, app.fetch);
  const url = env.PUBLIC_URL ?? localUrl;
  publishRunFile(ctx.runtime, ctx.settings.dataDir, "admin.url", url);
  logger.info({ url: `${url}/admin/queues` }, "admin board listening");
  return { url, port };
}
