// The admin face at /admin (the API's app forwards /admin/* to it; the admin role serves it alone):
// the login and logout forms, and Bull Board at /admin/queues behind an admin credential, read-only.
import { Hono } from "hono";
import type { Logger } from "pino";
import type { ApiEnv } from "../api/context.js";
import { requestId } from "../api/middleware/request-id.js";
import { createErrorHandler, problemResponse } from "../api/problem.js";
import { shownValue } from "../api/request-input.js";
import { AppError } from "../core/errors.js";
import type { IdGenerator } from "../core/ids.js";
import type { Clock } from "../core/time.js";
import { readOnlyBoard, requireAdmin } from "./guard.js";
import { loginRoutes } from "./login.js";
import { ADMIN_PATH, BOARD_PATH, type AdminAuthenticator, type SessionSettings } from "./session.js";

export interface AdminAppDeps {
  readonly auth: AdminAuthenticator;
  readonly session: SessionSettings;
  readonly clock: Clock;
  /** The board (createBoardApp), built for BOARD_PATH. */
  readonly board: Hono;
}

/** Mount the returned app at {@link ADMIN_PATH} of an app with non-strict routing. */
export function createAdminApp(deps: AdminAppDeps): Hono<ApiEnv> {
  const app = new Hono<ApiEnv>({ strict: false });
  app.use("*", async function noFraming(c, next) {
    await next();
    c.res.headers.set("x-frame-options", "DENY");
    // not no-referrer: with it, browsers send `Origin: null` with the login form, which the form refuses
    c.res.headers.set("referrer-policy", "same-origin");
  });
  app.route("/", loginRoutes(deps));
  app.get("/", (c) => c.redirect(BOARD_PATH, 303));

  const board = BOARD_PATH.slice(ADMIN_PATH.length);
  const guard = requireAdmin(deps.auth, deps.session);
  for (const path of [board, `${board}/*`]) {
    app.use(path, guard);
    app.use(path, readOnlyBoard);
  }
  // No job of ours belongs to a BullMQ flow: answered here, so the board never builds the
  // FlowProducer (one per connection, never closed) it would otherwise make to look for one.
  app.get(`${board}/api/queues/:queueName/:jobId/flow`, (c) =>
    c.json({ nodeId: c.req.param("jobId"), flowRoot: null, isFlowNode: false }),
  );
  app.route(board, deps.board);
  return app;
}

/**
 * The admin face as an app of its own that serves the full paths (`/admin/...`), with request ids,
 * problem documents and 404s. It keeps a router of its own: the API hands it ADMIN_FACE_PATHS as a
 * few routes, so Bull Board's few dozen routes never reach the API's router (with them, Hono's fast
 * RegExpRouter gives way to its TrieRouter for every API request).
 */
export function createAdminServer(
  deps: AdminAppDeps & { readonly logger: Logger; readonly ids: IdGenerator },
): Hono<ApiEnv> {
  const app = new Hono<ApiEnv>({ strict: false });
  app.onError(createErrorHandler(deps.logger));
  app.use(requestId({ ids: deps.ids }));
  app.route(ADMIN_PATH, createAdminApp(deps));
  app.notFound((c) =>
    problemResponse(
      new AppError("not_found", `no route for ${c.req.method} ${shownValue(c.req.path)}`),
      c.get("requestId"),
    ),
  );
  return app;
}
