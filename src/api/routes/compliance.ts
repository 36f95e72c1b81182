// GET /admin/compliance/reports (README "Compliance"): the stored reconciliation reports, newest
// first, a bounded page at a time, and each report as it was signed and stored (its CAS bytes).
// Admins only.
import { Hono, type Context } from "hono";
import { AppError, validationError } from "../../core/errors.js";
import { DIGEST_RE, type BlobStore } from "../../core/ports.js";
import { rfc3339 } from "../../core/time.js";
import type { ComplianceStore } from "../../queues/compliance-store.js";
import type { ApiEnv } from "../context.js";
import { shownValue } from "../request-input.js";

export interface ComplianceRouteDeps {
  readonly reports: Pick<ComplianceStore, "list" | "get">;
  readonly blobs: Pick<BlobStore, "get">;
  /** An absolute URL of a path of this API (the list links each report). */
  readonly absolute: (path: string) => string;
}

export const REPORTS_PATH = "/admin/compliance/reports";
/** Reports one page lists by default and at most. */
const PAGE_DEFAULT = 20;
const PAGE_MAX = 100;
const RFC3339_RE = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d{1,9})?(?:Z|[+-]\d{2}:\d{2})$/i;

function adminOnly(c: Context<ApiEnv>): void {
  if (!c.get("principal").admin) throw new AppError("forbidden", "compliance reports are for admins only");
}

function pageSize(raw: string | undefined): number {
  if (raw === undefined) return PAGE_DEFAULT;
  const n = /^\d{1,3}$/.test(raw) ? Number(raw) : NaN;
  if (!(n >= 1 && n <= PAGE_MAX)) {
    throw validationError("limit", "range", `limit must be an integer from 1 to ${PAGE_MAX}`);
  }
  return n;
}

function before(raw: string | undefined): number | undefined {
  if (raw === undefined) return undefined;
  const ms = raw.length <= 40 && RFC3339_RE.test(raw) ? Date.parse(raw) : NaN;
  if (!Number.isFinite(ms)) {
    throw validationError(
      "before",
      "format",
      "before must be an RFC 3339 date-time, e.g. 2026-12-01T00:00:00Z",
    );
  }
  return ms;
}

export function complianceRoutes(deps: ComplianceRouteDeps) {
  const app = new Hono<ApiEnv>();

  app.get(REPORTS_PATH, async (c) => {
    adminOnly(c);
    const limit = pageSize(c.req.query("limit"));
    const page = await deps.reports.list(limit, before(c.req.query("before")));
    const last = page.at(-1);
    c.header("cache-control", "no-store");
    return c.json({
      reports: page.map(({ summary }) => ({
        ...summary,
        url: deps.absolute(`${REPORTS_PATH}/${summary.digest}`),
      })),
      next:
        page.length === limit && last !== undefined
          ? deps.absolute(
              `${REPORTS_PATH}?limit=${limit}&before=${encodeURIComponent(rfc3339(last.generatedMs))}`,
            )
          : null,
    });
  });

  app.get(`${REPORTS_PATH}/:digest`, async (c) => {
    adminOnly(c);
    const digest = c.req.param("digest");
    const missing = () => new AppError("not_found", `no compliance report ${shownValue(digest)}`);
    if (!DIGEST_RE.test(digest) || (await deps.reports.get(digest)) === undefined) throw missing();
    const bytes = await deps.blobs.get(digest);
    if (bytes === undefined) throw missing();
    c.header("cache-control", "no-store");
    return c.body(bytes.slice().buffer, 200, { "content-type": "application/json" });
  });

  return app;
}
