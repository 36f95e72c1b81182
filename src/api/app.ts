// The Hono application: request ids, problem documents, authentication where API.md §1 requires it,
// the routes, and 404/405 for everything else.
import { Hono, type Context, type MiddlewareHandler } from "hono";
import { AppError } from "../core/errors.js";
import type { ApiEnv } from "./context.js";
import type { ApiDeps } from "./deps.js";
import { createErrorHandler, problemResponse } from "./problem.js";
import { accessLog } from "./middleware/access-log.js";
import { metricsRoutes } from "./routes/metrics.js";
import { authenticate } from "./middleware/authenticate.js";
import { limitReads } from "./middleware/limit-reads.js";
import { queueRoutes } from "./routes/queue.js";
import { jobRoutes } from "./routes/jobs.js";
import { eventRoutes } from "./routes/events.js";
import { generateRoutes } from "./routes/generate.js";
import { modelRoutes } from "./routes/models.js";
import { objectRoutes } from "./routes/objects.js";
import { healthRoutes } from "./routes/health.js";
import { playgroundRoutes } from "./routes/playground.js";
import { docsRoutes } from "./routes/docs.js";
import { webhookRoutes } from "./routes/webhooks.js";
import { usageRoutes } from "./routes/usage.js";
import { uploadRoutes } from "./routes/uploads.js";
import { complianceRoutes, REPORTS_PATH } from "./routes/compliance.js";
import { auditRoutes } from "./routes/audit.js";
import { shownValue } from "./request-input.js";
import { createMethodTable } from "./method-table.js";
import { createApiServices, type ApiServices } from "./services.js";

/**
 * The HTTP application. `services` (admission, limiter, …) are the process's own, shared with the
 * WebSocket; made here when not given.
 */
export function createApp(deps: ApiDeps, services: ApiServices = createApiServices(deps)): Hono<ApiEnv> {
  const app = new Hono<ApiEnv>({ strict: false });
  // 405 answers come from the routes registered below (read once they all are).
  const methods = createMethodTable(app);
  const { admission, limiter, grants, assets, imageBudget } = services;
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

  // The admin face (login, Bull Board) answers its paths itself, with its own router, request ids
  // and problem documents: registered first, nothing of the API runs for them.
  const admin = deps.admin;
  if (admin) for (const path of admin.paths) app.all(path, (c) => admin.fetch(c.req.raw, c.env));

  app.onError(createErrorHandler(deps.logger));
  // First: its line and metrics see the final answer, the error handler's and notFound's included.
  // (and the request id: every answer carries it)
  app.use(accessLog({ logger: deps.logger, metrics: deps.metrics, ids: deps.ids }));
  if (deps.metricsRoute) app.route("/", metricsRoutes(deps.metricsRoute));

  app.route(
    "/",
    healthRoutes(deps, {
      admin: async (c) => (await optionalPrincipal(c))?.admin === true,
    }),
  );
  // The playground page and its assets are public; the API calls it makes carry the pasted token.
  app.route(
    "/",
    playgroundRoutes({ files: deps.playground, publicOrigin: () => deps.present.absolute("/") }),
  );
  // GET /openapi.json and /docs: public (API.md §1).
  app.route(
    "/",
    docsRoutes({
      minTtlS: deps.config.minTtlS,
      maxTtlS: deps.config.maxTtlS,
      publicUrl: () => deps.present.absolute(""),
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
  // The token, then the reads quota, as one middleware: one layer of Hono's dispatch (an async
  // function and its promise) less per request.
  const authThenReads: MiddlewareHandler<ApiEnv> = (c, next) =>
    auth(c, () => reads(c, next) as Promise<void>);
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
    "/audit/segments",
  ]) {
    app.use(path, authThenReads);
  }
  app.route("/", queueRoutes(deps, admission, limiter));
  app.route("/", eventRoutes(deps));
  app.route("/", jobRoutes(deps));
  // receipts (behind /jobs/*'s token), segments (admins); the checkpoint, consistency proofs and the
  // JWKS are public (API.md §1)
  app.route("/", auditRoutes(deps));
  if (deps.webhooks) app.route("/", webhookRoutes({ ...deps, webhooks: deps.webhooks }));
  app.route("/", modelRoutes(deps));
  app.route("/", usageRoutes(deps));
  app.route("/", uploadRoutes(deps, { assets, imageBudget, limiter }));
  if (deps.compliance) {
    for (const path of [REPORTS_PATH, `${REPORTS_PATH}/*`]) {
      app.use(path, authThenReads);
    }
    app.route(
      "/",
      complianceRoutes({
        reports: deps.compliance,
        blobs: deps.blobs,
        absolute: (path) => deps.present.absolute(path),
      }),
    );
  }
  app.on("POST", ["/image/:family/:model/:task", "/video/:family/:model/:task"], requireToken);
  app.route("/", generateRoutes(deps, admission, limiter));

  // The WebSocket (API.md §3, §7) is served on the server's upgrade event (api/ws/gateway.ts); a GET
  // without the upgrade is told so rather than answered "no route".
  app.get("/ws", () => {
    throw new AppError(
      "validation_error",
      "GET /ws is the WebSocket endpoint: connect with Upgrade: websocket",
      { details: { field: "upgrade", constraint: "websocket" } },
    );
  });

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
