// GET /jobs/{id} (303 for complete jobs), DELETE /jobs/{id} and POST /jobs/{id}/cancel; the reads and
// the cancel for a principal, which the WebSocket uses too.
import { Hono, type Context } from "hono";
import { AppError, validationError } from "../../core/errors.js";
import { isJobId } from "../../core/ids.js";
import { HEADER_MAX_CHARS, JOB_ID_MAX_CHARS } from "../../core/request-limits.js";
import type { JobRecord } from "../../core/job.js";
import type { ApiEnv } from "../context.js";
import type { ApiDeps } from "../deps.js";
import { boundedHeader } from "../request-input.js";
import type { Principal } from "../auth.js";

/** A job id as messages show it: an id longer than any job id is cut (it names no job anyway). */
function shownId(id: string): string {
  return id.length > JOB_ID_MAX_CHARS ? `${id.slice(0, JOB_ID_MAX_CHARS)}…` : id;
}

/** Reads a job the caller may see; another customer's job is reported exactly as a missing one. */
export async function readOwnJob(
  deps: ApiDeps,
  c: Context<ApiEnv>,
  id: string,
): Promise<{ job: JobRecord; position: number; held: boolean }> {
  return readJobFor(deps, c.get("principal"), id);
}

/**
 * {@link readOwnJob} for a principal (the WebSocket has no request context).
 * @throws AppError 404 `not_found` for a malformed id, a missing job or another customer's.
 */
export async function readJobFor(
  deps: Pick<ApiDeps, "store" | "scheduler">,
  principal: Principal,
  id: string,
): Promise<{ job: JobRecord; position: number; held: boolean }> {
  if (!isJobId(id)) throw new AppError("not_found", `job ${shownId(id)} not found`);
  let found = await deps.store.read(id);
  // An admission this process reported as "unknown" is settled before its job is called missing, so a
  // 404 here is final (a late admit of a voided id stores nothing).
  if (!found && (await deps.scheduler.resolvePending(id)) > 0) found = await deps.store.read(id);
  if (!found || (!principal.admin && found.job.customerId !== principal.customerId)) {
    throw new AppError("not_found", `job ${shownId(id)} not found`);
  }
  return found;
}

/**
 * Cancels a job of the caller (API.md §3 Cancel; an admin may cancel anyone's): it was queued (now
 * removed, never run) or running (its backend call is being aborted; the job is `cancelled` already).
 * @throws AppError 409 `conflict` when the job has finished; 404 `not_found` for a malformed id, a
 *   missing job or another customer's.
 */
export async function cancelJobFor(
  deps: Pick<ApiDeps, "scheduler">,
  principal: Principal,
  id: string,
): Promise<"was_queued" | "was_running"> {
  const result = isJobId(id)
    ? await deps.scheduler.cancel(id, principal.admin ? undefined : principal.customerId)
    : "missing";
  if (result === "terminal") throw new AppError("conflict", `job ${id} has already finished`);
  if (result === "missing") throw new AppError("not_found", `job ${shownId(id)} not found`);
  return result;
}

/**
 * Whether a complete job answers 303: not with `?redirect=false`, nor for a client that accepts JSON
 * but not `*\/*`.
 * @throws AppError 400 `validation_error` for a `redirect` other than `true`/`false` (`enum`) or an
 *   `Accept` header longer than {@link HEADER_MAX_CHARS} (`max_length`).
 */
function wantsRedirect(c: Context): boolean {
  const redirect = c.req.query("redirect");
  if (redirect !== undefined && redirect !== "" && redirect !== "true" && redirect !== "false") {
    throw validationError("redirect", "enum", "redirect must be true or false");
  }
  if (redirect === "false") return false;
  const accept = boundedHeader(c, "Accept", HEADER_MAX_CHARS);
  if (accept && /application\/json/i.test(accept) && !accept.includes("*/*")) return false;
  return true;
}

export function jobRoutes(deps: ApiDeps) {
  const app = new Hono<ApiEnv>();

  app.get("/jobs/:id", async (c) => {
    const redirect = wantsRedirect(c);
    const { job, position, held } = await readOwnJob(deps, c, c.req.param("id"));
    const body = await deps.present.job(job, position, c.get("principal"), held);
    if (job.status === "complete" && typeof body.output === "string" && redirect) {
      c.header("location", body.output);
      return c.json(body, 303);
    }
    return c.json(body);
  });

  const cancel = async (c: Context<ApiEnv>) => {
    const id = c.req.param("id") ?? "";
    const principal = c.get("principal");
    if ((await cancelJobFor(deps, principal, id)) === "was_queued") return c.body(null, 204);
    const found = await deps.store.read(id);
    return c.json(
      found
        ? await deps.present.job(found.job, found.position, principal, found.held)
        : { id, status: "cancelled" },
      202,
    );
  };
  app.delete("/jobs/:id", cancel);
  app.post("/jobs/:id/cancel", cancel);

  return app;
}
