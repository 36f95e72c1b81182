// GET /usage?from&to&group_by=model|day[&customer=] (API.md §3): the caller's usage; admins may name
// a customer.
import { Hono } from "hono";
import { validationError } from "../../core/errors.js";
import { rfc3339 } from "../../core/time.js";
import type { ApiEnv } from "../context.js";
import type { ApiDeps } from "../deps.js";
import { USAGE_GROUPINGS, usageOf, type UsageGrouping } from "../usage.js";

const isGrouping = (value: string): value is UsageGrouping =>
  (USAGE_GROUPINGS as readonly string[]).includes(value);

/** The longest window one request may ask for (ms). */
const MAX_WINDOW_MS = 366 * 86_400_000;
const RFC3339_RE = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d{1,9})?(?:Z|[+-]\d{2}:\d{2})$/i;
/** A customer id as `customer=` may name it (also the document's pattern for it). */
export const CUSTOMER_RE = /^[A-Za-z0-9_.:@-]{1,128}$/;

function instant(field: string, raw: string | undefined, fallback: number): number {
  if (raw === undefined) return fallback;
  const ms = raw.length <= 40 && RFC3339_RE.test(raw) ? Date.parse(raw) : NaN;
  if (!Number.isFinite(ms)) {
    throw validationError(
      field,
      "format",
      `${field} must be an RFC 3339 date-time, e.g. 2026-12-01T00:00:00Z`,
    );
  }
  return ms;
}

export function usageRoutes(deps: ApiDeps) {
  const app = new Hono<ApiEnv>();
  app.get("/usage", async (c) => {
    const principal = c.get("principal");
    const now = deps.clock();
    const to = instant("to", c.req.query("to"), now);
    // default: the current UTC month so far
    const monthStart = Date.UTC(new Date(to).getUTCFullYear(), new Date(to).getUTCMonth(), 1);
    const from = instant("from", c.req.query("from"), Math.min(monthStart, to));
    if (from > to) throw validationError("from", "before_to", "from must not be after to");
    if (to - from > MAX_WINDOW_MS)
      throw validationError("to", "window", "the window may span at most 366 days");
    const groupBy = c.req.query("group_by");
    if (groupBy !== undefined && !isGrouping(groupBy)) {
      throw validationError("group_by", "enum", `group_by must be ${USAGE_GROUPINGS.join(" or ")}`);
    }
    let customer = principal.customerId;
    const named = c.req.query("customer");
    if (named !== undefined) {
      if (!principal.admin && named !== principal.customerId) {
        throw validationError("customer", "admin_only", "only admins may name another customer");
      }
      if (!CUSTOMER_RE.test(named))
        throw validationError("customer", "format", "customer is not a customer id");
      customer = named;
    }
    const report = await usageOf(deps, customer, from, to, groupBy);
    const shown = (s: { jobs: number; gpuMs: number; cost: number }) => ({
      jobs: s.jobs,
      gpu_seconds: s.gpuMs / 1000,
      cost_micro_usd: s.cost,
    });
    return c.json({
      from: rfc3339(from),
      to: rfc3339(to),
      customer_id: customer,
      ...(groupBy === undefined ? {} : { group_by: groupBy }),
      total: shown(report.total),
      groups: report.groups.map((g) => ({ key: g.key, ...shown(g) })),
    });
  });
  return app;
}
