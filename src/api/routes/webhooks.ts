// Webhook routes (API.md §3 "Webhooks"; README "Webhooks"): the tenant's signing secret and its
// rotation, a job's delivery log, and the replay of one delivery.
import { Hono, type Context } from "hono";
import { AppError } from "../../core/errors.js";
import { isJobId } from "../../core/ids.js";
import { rfc3339 } from "../../core/time.js";
import { DELIVERY_ID_RE, jobOfDelivery } from "../../core/webhook-delivery.js";
import type { DeliveryRecord } from "../../queues/webhook-log.js";
import type { SecretView } from "../../queues/webhook-secrets.js";
import type { ApiEnv } from "../context.js";
import type { ApiDeps, WebhookApi } from "../deps.js";
import { readOwnJob } from "./jobs.js";

/** Longest delivery id a message shows (longer ones name no delivery anyway). */
const SHOWN_ID_MAX = 96;
const shown = (id: string) => (id.length > SHOWN_ID_MAX ? `${id.slice(0, SHOWN_ID_MAX)}…` : id);

function secretBody(v: SecretView): Record<string, unknown> {
  return {
    secret: v.secret,
    ...(v.previousUntil === undefined ? {} : { previous_valid_until: rfc3339(v.previousUntil) }),
  };
}

/** A delivery as `GET /jobs/{id}/webhooks` lists it. */
function deliveryBody(d: DeliveryRecord): Record<string, unknown> {
  return {
    id: d.id,
    event: d.event,
    type: `job.${d.event}`,
    url: d.url,
    state: d.state,
    created_at: rfc3339(d.createdAt),
    updated_at: rfc3339(d.updatedAt),
    ...(d.replays > 0 ? { replays: d.replays } : {}),
    attempts: d.attempts.map((a) => ({
      at: rfc3339(a.at),
      duration_ms: a.durationMs,
      ...(a.status === undefined ? {} : { status_code: a.status }),
      ...(a.error === undefined ? {} : { error: a.error }),
      ...(a.replay === undefined ? {} : { replay: a.replay }),
    })),
  };
}

/**
 * The routes; mounted by createApp when `deps.webhooks` is set, behind authentication (every route
 * needs a token) and the reads quota. Another customer's job or delivery is reported exactly as a
 * missing one (404); admins see all.
 */
export function webhookRoutes(deps: ApiDeps & { readonly webhooks: WebhookApi }) {
  const app = new Hono<ApiEnv>();
  const { secrets, log } = deps.webhooks;

  const noStore = (c: Context) => c.header("cache-control", "no-store");

  app.get("/webhooks/secret", async (c) => {
    noStore(c);
    return c.json(secretBody(await secrets.current(c.get("principal").customerId)));
  });

  app.post("/webhooks/secret/rotate", async (c) => {
    noStore(c);
    return c.json(secretBody(await secrets.rotate(c.get("principal").customerId)));
  });

  app.get("/jobs/:id/webhooks", async (c) => {
    const id = c.req.param("id");
    const principal = c.get("principal");
    const deliveries = isJobId(id) ? await log.list(id) : [];
    // The log outlives the job's record: its own customer field decides who may read it.
    if (deliveries.length === 0) await readOwnJob(deps, c, id);
    else if (!principal.admin && deliveries[0]!.customerId !== principal.customerId)
      throw new AppError("not_found", `job ${id} not found`);
    return c.json({ job_id: id, deliveries: deliveries.map(deliveryBody) });
  });

  app.post("/jobs/:id/webhooks/:delivery/replay", async (c) => {
    const id = c.req.param("id");
    const deliveryId = c.req.param("delivery");
    const principal = c.get("principal");
    const missing = () => new AppError("not_found", `delivery ${shown(deliveryId)} not found`);
    if (!DELIVERY_ID_RE.test(deliveryId) || jobOfDelivery(deliveryId) !== id) throw missing();
    const task = await log.task(deliveryId);
    if (!task || (!principal.admin && task.customerId !== principal.customerId)) throw missing();
    const replay = await log.replay(deliveryId, deps.clock());
    // A replay says the receiver is back: a URL disabled by a 410 is enabled again.
    await log.enable(task.customerId, task.url);
    await deps.webhooks.enqueueReplay(task, replay);
    return c.json({ id: deliveryId, job_id: id, state: "pending", replay }, 202);
  });

  return app;
}
