// The synchronous route POST /{modality}/{family}/{model}/{task}: admits the job only when capacity
// can start it within the budget (else 503 capacity_exhausted), waits for it, and answers with the
// bytes (200), JSON outputs for count > 1, or the job (202) when the budget runs out.
import { Hono, type Context } from "hono";
import { AppError, validationError } from "../../core/errors.js";
import { resolveRoute } from "../../core/catalog.js";
import { isBackendName, parseSyncRequest } from "../../core/request-schema.js";
import { FORMAT_MAX_CHARS, HEADER_MAX_CHARS } from "../../core/request-limits.js";
import { rfc3339 } from "../../core/time.js";
import { tierOf } from "../../core/tiers.js";
import type { ApiEnv } from "../context.js";
import type { ApiDeps } from "../deps.js";
import { admitJob, type AdmissionDeps, type Admitted } from "../admission.js";
import { confirmReplicated } from "../replicated.js";
import type { RateHeaders, RateLimiter } from "../rate-limits.js";
import { jsonResponse, requestIdHeaders, sendEarlyHints, stampedResponse } from "../respond.js";
import { boundedHeader, boundedQuery } from "../request-input.js";
import { watchJob, type JobWatch } from "../sync-wait.js";
import { newJobId } from "../../core/pools.js";
import { formatFamilyModel } from "../../core/model-route.js";

/** `Prefer: wait=N` (seconds) lowers the budget; it never raises it. */
export function syncBudget(prefer: string | undefined, maxMs: number): number {
  const m = prefer ? /(?:^|[,;\s])wait=(\d+)/i.exec(prefer) : null;
  if (!m) return maxMs;
  return Math.max(0, Math.min(maxMs, Number(m[1]) * 1000));
}

/**
 * Whether the client asked for a `103 Early Hints` (`Prefer: early-hints`). Only on request: many
 * HTTP/1.1 clients take any 1xx for the final answer (Python's http.client, so requests and urllib3;
 * Java's HttpURLConnection), and would read an empty 103 and leave the real answer on the connection.
 */
export function wantsEarlyHints(prefer: string | undefined): boolean {
  return prefer !== undefined && /(?:^|,)\s*early-hints\s*(?:[;,]|$)/i.test(prefer);
}

function prefersWebp(accept: string | undefined): boolean {
  if (!accept) return false;
  const webp = /image\/webp(?:\s*;\s*q=([\d.]+))?/i.exec(accept);
  if (!webp) return false;
  const png = /image\/png(?:\s*;\s*q=([\d.]+))?/i.exec(accept);
  const q = (m: RegExpExecArray | null) => (m ? Number(m[1] ?? 1) : 0);
  return q(webp) > 0 && q(webp) >= q(png);
}

export function generateRoutes(deps: ApiDeps, admission: AdmissionDeps, limiter: RateLimiter) {
  const app = new Hono<ApiEnv>();

  // One route per modality (not `/:modality/...`): it keeps every route of the app within what
  // Hono's fastest router (RegExpRouter) accepts, and any other first segment is simply not a route.
  const generate = (modality: "image" | "video") => async (c: Context<ApiEnv>) => {
    const principal = c.get("principal");
    // A tier without the sync route is refused before anything is read, counted or stored.
    if (tierOf(deps.tiers, principal.tier)?.sync !== true) {
      throw new AppError(
        "forbidden",
        `the ${principal.tier} tier has no synchronous route; submit the job with POST /queue`,
        { details: { tier: principal.tier, sync: false } },
      );
    }
    const p = c.req.param() as Record<string, string>;
    const { entry, task } = resolveRoute(deps.catalog, {
      modality,
      family: p.family ?? "",
      model: p.model ?? "",
      task: p.task ?? "",
    });
    const body = await deps.bodies.readJson(c);
    const format = boundedQuery(c, "format", FORMAT_MAX_CHARS);
    const request = parseSyncRequest(body, {
      entry,
      task,
      catalog: deps.catalog,
      ...(format === undefined || format === "" ? {} : { format }),
    });
    const backend = c.req.query("backend") || undefined;
    if (backend !== undefined && !isBackendName(backend)) {
      throw validationError("backend", "format", "backend must be an engine name or a backend id");
    }
    const prefer = boundedHeader(c, "Prefer", HEADER_MAX_CHARS);
    const budget = syncBudget(prefer, deps.config.syncBudgetMs);
    const webp = request.modality === "image" && prefersWebp(boundedHeader(c, "Accept", HEADER_MAX_CHARS));
    // A valid submit counts (as on POST /queue), whatever the admission says next.
    // (its RateLimit headers go on every answer: the problem documents' here, the others' below)
    const limits = await limiter.take("submits", principal);
    if (limits) c.set("problemHeaders", limits);
    // The job's id comes first, and the watch for its end before its admission: the wait then reads
    // the job only once it may have ended (api/sync-wait.ts).
    const id = newJobId(
      admission.ids("job"),
      admission.pools,
      formatFamilyModel(request.family, request.model),
    );
    const watch = watchJob(deps, id);
    try {
      const admitted = await admitJob(
        {
          id,
          principal,
          request,
          priority: "normal",
          mode: "sync",
          startWithinMs: Math.max(budget, 1),
          ...(backend === undefined ? {} : { backend }),
          ...(webp ? { outputFormat: "webp" as const } : {}),
        },
        admission,
      );
      return await answer(c, watch, admitted, { prefer, budget, limits });
    } finally {
      watch.close();
    }
  };

  /** The sync answer of an admitted job: its bytes, its outputs, or the job once the budget is spent. */
  async function answer(
    c: Context<ApiEnv>,
    watch: JobWatch,
    admitted: Admitted,
    o: { prefer: string | undefined; budget: number; limits: RateHeaders | undefined },
  ): Promise<Response> {
    const { prefer, budget, limits } = o;
    const principal = c.get("principal");
    const location = deps.present.absolute(`/jobs/${admitted.id}`);
    // The job exists from here on: the first bytes of the answer name it (a 103 informational
    // response, for a client that asked and where the protocol allows), and so does every final
    // answer, error answers included (the error handler adds these), so the client can still follow
    // it — also after a Redis outage during the wait, or when it gives up waiting.
    if (wantsEarlyHints(prefer))
      sendEarlyHints(c, `<${location}/events>; rel="monitor"`, { "x-job-id": admitted.id, location });
    c.set("problemHeaders", { ...limits, "x-job-id": admitted.id, location });
    const gone = c.req.raw.signal;
    const job = await watch.until(budget, gone);

    if (!job && gone.aborted) {
      // The client left while waiting: nobody reads this answer. Its job is cancelled
      // (SYNC_CANCEL_ON_DISCONNECT) unless this process is shutting down, which closes the
      // connections itself: then the job goes on and can be found by the id sent in the 103 (to a
      // client that asked for it).
      if (deps.config.syncCancelOnDisconnect && deps.accepting()) {
        await deps.scheduler.cancel(admitted.id, principal.customerId).then(
          (result) => deps.logger.debug({ job: admitted.id, result }, "sync client left; job cancelled"),
          (err: unknown) => deps.logger.warn({ job: admitted.id, err }, "sync client left; cancel failed"),
        );
      }
      return c.body(null, 204);
    }
    if (!job) {
      // Budget spent: the job goes on; answer like the async route (REDIS_WAIT_REPLICAS included).
      await confirmReplicated(deps.replication, admitted.id, false);
      const found = await deps.store.read(admitted.id);
      const pub = found
        ? await deps.present.job(found.job, found.position, principal, found.held)
        : { id: admitted.id, status: "queued" };
      return jsonResponse(
        c,
        { ...pub, events_url: `${location}/events`, created_at: rfc3339(admitted.createdAt) },
        202,
        { ...limits, location, link: `<${location}/events>; rel="monitor"`, "x-job-id": admitted.id },
      );
    }
    if (job.status !== "complete" || !job.output) {
      const err = job.error ?? {
        code: "internal_error",
        message: "the job ended without output",
        retriable: false,
      };
      const details = { job_id: job.id, code: err.code };
      if (job.status === "cancelled")
        throw new AppError("conflict", `job ${job.id} was cancelled: ${err.message}`, { details });
      if (!err.retriable) throw new AppError("validation_error", err.message, { details });
      throw new AppError("unavailable", `generation failed: ${err.message}`, {
        details,
        headers: { "retry-after": "1" },
      });
    }
    // Plain header objects, as the node adapter writes them without building web Headers (respond.ts).
    const seed = String(job.seed ?? admitted.seed);
    const duration = String((job.completedAt ?? deps.clock()) - job.createdAt);
    const common: Record<string, string> = {
      ...limits,
      "x-job-id": job.id,
      "x-seed": seed,
      "x-weyl-seed": seed,
      "x-duration-ms": duration,
      "x-weyl-duration-ms": duration,
      "x-gpu-ms": String(job.gpuMs ?? 0),
      "content-location": deps.present.objectUrl(job.output),
    };
    const outputs = job.outputs ?? [job.output];
    if (outputs.length > 1) {
      const body = {
        id: job.id,
        status: job.status,
        seed: job.seed,
        outputs: outputs.map((d) => deps.present.objectUrl(d)),
        gpu_ms: job.gpuMs,
      };
      return jsonResponse(c, body, 200, common);
    }
    // Left by this process's worker (roles api and worker in one process), or read from the CAS.
    const bytes = deps.handover?.take(job.output) ?? (await deps.blobs.get(job.output));
    if (!bytes) throw new AppError("internal_error", "the output is missing from storage");
    return stampedResponse(bytes, 200, {
      ...requestIdHeaders(c.get("requestId")),
      ...common,
      "content-type": job.contentType ?? "application/octet-stream",
    });
  }
  app.post("/image/:family/:model/:task", generate("image"));
  app.post("/video/:family/:model/:task", generate("video"));

  return app;
}
