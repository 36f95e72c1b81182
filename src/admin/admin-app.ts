// The admin face, mounted at /admin (inside the API's app, or alone in the admin role): the login and
// logout forms, and Bull Board at /admin/queues behind an admin credential, read-only.
import { Hono } from "hono";
import type { ApiEnv } from "../api/context.js";
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
