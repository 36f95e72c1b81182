// GET /jobs/{id} (303 for complete jobs), DELETE /jobs/{id} and POST /jobs/{id}/cancel.
import { Hono, type Context } from "hono";
import { AppError } from "../../core/errors.js";
import { isJobId } from "../../core/ids.js";
import type { JobRecord } from "../../core/job.js";
import type { ApiEnv } from "../context.js";
import type { ApiDeps } from "../deps.js";

/** Reads a job the caller may see; another customer's job is reported exactly as a missing one. */
export async function readOwnJob(
  deps: ApiDeps,
  c: Context<ApiEnv>,
  id: string,
): Promise<{ job: JobRecord; position: number }> {
  const principal = c.get("principal");
  if (!isJobId(id)) throw new AppError("not_found", `job ${id} not found`);
  let found = await deps.store.read(id);
  // An admission this process reported as "unknown" is settled before its job is called missing, so a
  // 404 here is final (a late admit of a voided id stores nothing).
  if (!found && (await deps.scheduler.resolvePending(id)) > 0) found = await deps.store.read(id);
  if (!found || (!principal.admin && found.job.customerId !== principal.customerId)) {
    throw new AppError("not_found", `job ${id} not found`);
  }
  return found;
}

function wantsRedirect(c: Context): boolean {
  if (c.req.query("redirect") === "false") return false;
  const accept = c.req.header("accept");
  if (accept && /application\/json/i.test(accept) && !accept.includes("*/*")) return false;
  return true;
}

export function jobRoutes(deps: ApiDeps) {
  const app = new Hono<ApiEnv>();

  app.get("/jobs/:id", async (c) => {
    const { job, position } = await readOwnJob(deps, c, c.req.param("id"));
    const body = await deps.present.job(job, position, c.get("principal"));
    if (job.status === "complete" && typeof body.output === "string" && wantsRedirect(c)) {
      c.header("location", body.output);
      return c.json(body, 303);
    }
    return c.json(body);
  });

  const cancel = async (c: Context<ApiEnv>) => {
    const id = c.req.param("id") ?? "";
    const principal = c.get("principal");
    const result = isJobId(id)
      ? await deps.scheduler.cancel(id, principal.admin ? undefined : principal.customerId)
      : "missing";
    switch (result) {
      case "was_queued":
        return c.body(null, 204);
      case "was_running": {
        const found = await deps.store.read(id);
        return c.json(
          found ? await deps.present.job(found.job, found.position, principal) : { id, status: "cancelled" },
          202,
        );
      }
      case "terminal":
        throw new AppError("conflict", `job ${id} has already finished`);
      case "missing":
        throw new AppError("not_found", `job ${id} not found`);
    }
  };
  app.delete("/jobs/:id", cancel);
  app.post("/jobs/:id/cancel", cancel);

  return app;
}
