// The Hono application: request ids, problem documents, authentication where API.md §1 requires it,
// the routes, and 404/405 for everything else.
import { Hono, type Context } from "hono";
import { AppError } from "../core/errors.js";
import type { ApiEnv } from "./context.js";
import type { ApiDeps } from "./deps.js";
import { createErrorHandler, problemResponse } from "./problem.js";
import { requestId } from "./middleware/request-id.js";
import { accessLog } from "./middleware/access-log.js";
import { metricsRoutes } from "./routes/metrics.js";
import { authenticate } from "./middleware/authenticate.js";
import { limitReads } from "./middleware/limit-reads.js";
import { createRateLimiter } from "./rate-limits.js";
import { queueRoutes } from "./routes/queue.js";
import { jobRoutes } from "./routes/jobs.js";
import { eventRoutes } from "./routes/events.js";
import { generateRoutes } from "./routes/generate.js";
import { modelRoutes } from "./routes/models.js";
import { objectRoutes } from "./routes/objects.js";
import { healthRoutes } from "./routes/health.js";
import { webhookRoutes } from "./routes/webhooks.js";
import { usageRoutes } from "./routes/usage.js";
import { uploadRoutes } from "./routes/uploads.js";
import { createAssetStore } from "../queues/asset-store.js";
import { isSignedObjectUrl } from "./objects.js";
import { createObjectGrants } from "../queues/object-grants.js";
import type { AdmissionDeps } from "./admission.js";
import { shownValue } from "./request-input.js";
import { createImageBudget } from "./input-images.js";
import { createMethodTable } from "./method-table.js";

export function createApp(deps: ApiDeps): Hono<ApiEnv> {
  const app = new Hono<ApiEnv>({ strict: false });
  // 405 answers come from the routes registered below (read once they all are).
  const methods = createMethodTable(app);
  const grants = createObjectGrants(deps.redis, deps.scheduler.keys.prefix, deps.config.retentionS);
  // One per app, so per process: the API role creates one app.
  const imageBudget = createImageBudget(deps.config.inputImageBudgetBytes);
  const assets = createAssetStore(deps.redis, deps.scheduler.keys.prefix);
  const admission: AdmissionDeps = {
    scheduler: deps.scheduler,
    tiers: deps.tiers,
    blobs: deps.blobs,
    capacity: deps.capacity,
    cost: deps.cost,
    clock: deps.clock,
    ids: deps.ids,
    grantObject: (digest, customer) => grants.grant(digest, customer),
    // An input object is usable by whoever may read it: its owner, an admin, or the holder of a
    // signed URL of it (the same rule as GET /objects/{digest}).
    mayReadObject: async (digest, principal, url) =>
      principal.admin ||
      (url !== undefined &&
        isSignedObjectUrl(
          url,
          digest,
          deps.config.urlKey,
          Math.floor(deps.clock() / 1000),
          deps.config.outputUrlTtlS,
        )) ||
      (await grants.isOwner(digest, principal.customerId)),
    resolveAsset: async (id, principal) => {
      const asset = await assets.read(id);
      if (!asset || (!principal.admin && asset.customerId !== principal.customerId)) return "missing";
      return asset.state === "done" && asset.digest !== undefined ? { digest: asset.digest } : "pending";
    },
    defaultTtlS: deps.config.defaultTtlS,
    redisNearLimit: deps.redisNearLimit,
    metrics: deps.metrics,
    inputs: {
      policy: deps.config.outbound,
      http: deps.outboundHttp,
      inspector: deps.imageInspector,
      maxBytes: deps.config.inputImageMaxBytes,
      fetchTimeoutMs: deps.config.inputFetchTimeoutMs,
      budget: imageBudget,
    },
  };
  // Submits per minute and reads per second per customer (API.md §1; docs/decisions.md "Rate limits").
  const limiter = createRateLimiter({ tiers: deps.tiers, store: deps.rateLimits });
  const token = {
    authenticate: deps.authenticate,
    ...(deps.peekPrincipal ? { peek: deps.peekPrincipal } : {}),
  };
  const requireToken = authenticate(token);
  // A method the path does not have is answered 405 (by notFound below) before asking for a token.
  const auth = authenticate({
    ...token,
    skip: (c) => methods.refused(c) !== undefined,
  });
  const optionalPrincipal = async (c: Context<ApiEnv>) => {
    try {
      return await deps.authenticate(c.req.header("authorization"));
    } catch {
      return undefined;
    }
  };

  app.onError(createErrorHandler(deps.logger));
  // First: its line and metrics see the final answer, the error handler's and notFound's included.
  app.use(accessLog({ logger: deps.logger, metrics: deps.metrics }));
  app.use(requestId({ ids: deps.ids }));
  if (deps.metricsRoute) app.route("/", metricsRoutes(deps.metricsRoute));

  app.route(
    "/",
    healthRoutes(deps, {
      admin: async (c) => (await optionalPrincipal(c))?.admin === true,
    }),
  );
  app.route(
    "/",
    objectRoutes(deps, {
      isOwner: (digest, customer) => grants.isOwner(digest, customer),
      // A bearer read (not a signed URL) takes a unit of the reads quota.
      authenticate: async (c) => {
        const who = await optionalPrincipal(c);
        const headers = who && (await limiter.take("reads", who));
        if (headers) for (const [name, value] of Object.entries(headers)) c.header(name, value);
        return who;
      },
    }),
  );

  const reads = limitReads({ limiter });
  // `/uploads` only: the PUT of `/uploads/{id}` carries no token (its URL's signature authorises it).
  for (const path of [
    "/queue",
    "/jobs/*",
    "/models",
    "/models/*",
    "/uploads",
    "/assets/*",
    "/usage",
    "/webhooks/*",
  ]) {
    app.use(path, auth);
    app.use(path, reads);
  }
  app.route("/", queueRoutes(deps, admission, limiter));
  app.route("/", eventRoutes(deps));
  app.route("/", jobRoutes(deps));
  if (deps.webhooks) app.route("/", webhookRoutes({ ...deps, webhooks: deps.webhooks }));
  app.route("/", modelRoutes(deps));
  app.route("/", usageRoutes(deps));
  app.route("/", uploadRoutes(deps, { assets, imageBudget, limiter }));
  app.on("POST", ["/image/:family/:model/:task", "/video/:family/:model/:task"], requireToken);
  app.route("/", generateRoutes(deps, admission, limiter));

  app.notFound((c) => {
    const allowed = methods.refused(c);
    const path = shownValue(c.req.path);
    const id = c.get("requestId");
    if (allowed) {
      return problemResponse(
        new AppError("method_not_allowed", `${c.req.method} is not allowed on ${path}`, {
          headers: { allow: allowed.join(", ") },
        }),
        id,
      );
    }
    return problemResponse(new AppError("not_found", `no route for ${c.req.method} ${path}`), id);
  });

  return app;
}
