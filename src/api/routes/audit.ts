// The audit log's routes (API.md §3 "Receipts, audit log and usage"): a job's receipt (its owner or an
// admin), the latest signed checkpoint and consistency proofs (public: anyone may check that history
// was only appended), the segments (admins) and the checkpoint keys as a JWKS (public).
import { Hono, type Context } from "hono";
import { AppError, validationError } from "../../core/errors.js";
import { isJobId } from "../../core/ids.js";
import { JOB_ID_MAX_CHARS } from "../../core/request-limits.js";
import type { AuditReads } from "../audit-reads.js";
import type { ApiEnv } from "../context.js";

/** Most segments one page of GET /audit/segments lists. */
export const SEGMENTS_PAGE_MAX = 1_000;
const SEGMENTS_PAGE_DEFAULT = 100;
/** How long caches may keep the JWKS (s): keys are only ever added, and a new kid is fetched anew. */
const JWKS_MAX_AGE_S = 300;
/** A non-negative integer as a query carries it: digits, no sign, no leading zero, at most 16. */
const INTEGER_RE = /^(?:0|[1-9][0-9]{0,15})$/;

/**
 * The integer query parameter `field`, or `fallback` when absent.
 * @throws AppError 400 `validation_error` (`integer`, `minimum`, `maximum`) for anything else.
 */
function integerParam(c: Context, field: string, min: number, max: number, fallback?: number): number {
  const raw = c.req.query(field);
  if (raw === undefined && fallback !== undefined) return fallback;
  if (raw === undefined || !INTEGER_RE.test(raw) || !Number.isSafeInteger(Number(raw))) {
    throw validationError(field, "integer", `${field} must be a non-negative integer`);
  }
  const n = Number(raw);
  if (n < min) throw validationError(field, "minimum", `${field} must be at least ${min}`);
  if (n > max) throw validationError(field, "maximum", `${field} must be at most ${max}`);
  return n;
}

/**
 * Consistency proofs computed at once by one API process. The route is public (API.md §1), and a proof
 * between arbitrary sizes may read and hash two segments' leaves: beyond this many, a request is
 * answered 503 with `Retry-After: 1` at once instead of queueing work.
 */
export const PROOFS_IN_FLIGHT_MAX = 4;

export function auditRoutes(deps: { readonly audit: AuditReads; readonly proofsInFlightMax?: number }) {
  const app = new Hono<ApiEnv>();
  const { audit } = deps;
  const proofsMax = deps.proofsInFlightMax ?? PROOFS_IN_FLIGHT_MAX;
  let proofs = 0;

  app.get("/jobs/:id/receipt", async (c) => {
    const id = c.req.param("id");
    const shown = id.length > JOB_ID_MAX_CHARS ? `${id.slice(0, JOB_ID_MAX_CHARS)}…` : id;
    const missing = new AppError(
      "not_found",
      `no receipt for job ${shown}: it is not finished, not yet in a signed checkpoint, or not yours`,
    );
    if (!isJobId(id)) throw missing;
    const receipt = await audit.receipt(id);
    const principal = c.get("principal");
    // another customer's receipt is reported exactly as a missing one (API.md §1)
    if (receipt === undefined || (!principal.admin && receipt.record.customer_id !== principal.customerId)) {
      throw missing;
    }
    return c.json(receipt);
  });

  app.get("/audit/checkpoint", async (c) => {
    const checkpoint = await audit.checkpoint();
    if (checkpoint === undefined) throw new AppError("not_found", "the audit log has no checkpoint yet");
    c.header("cache-control", "no-cache");
    return c.json(checkpoint);
  });

  app.get("/audit/consistency", async (c) => {
    const to = integerParam(c, "to", 1, Number.MAX_SAFE_INTEGER);
    const from = integerParam(c, "from", 1, Number.MAX_SAFE_INTEGER);
    if (from > to) throw validationError("from", "maximum", "from must not be above to");
    // Only sizes a signed checkpoint covers: what a verifier holds, and nothing the log has not
    // published yet (the committed size runs ahead of the latest checkpoint).
    const signed = (await audit.checkpoint())?.tree_size ?? 0;
    if (to > signed) {
      throw validationError(
        "to",
        "maximum",
        `to must not be above the latest signed checkpoint's size (${signed} leaves)`,
      );
    }
    if (proofs >= proofsMax) {
      throw new AppError("unavailable", "too many consistency proofs are being computed; retry shortly", {
        headers: { "Retry-After": "1" },
      });
    }
    proofs += 1;
    try {
      return c.json({ from, to, proof: await audit.consistency(from, to) });
    } finally {
      proofs -= 1;
    }
  });

  app.get("/audit/segments", async (c) => {
    if (!c.get("principal").admin) throw new AppError("forbidden", "the audit log's segments are for admins");
    const from = integerParam(c, "from", 0, Number.MAX_SAFE_INTEGER, 0);
    const limit = integerParam(c, "limit", 1, SEGMENTS_PAGE_MAX, SEGMENTS_PAGE_DEFAULT);
    const page = await audit.segments(from, limit);
    return c.json({
      tree_size: page.size,
      segment_size: page.segmentSize,
      segments: page.segments,
      ...(page.next === undefined ? {} : { next: page.next }),
    });
  });

  app.get("/.well-known/render-gateway/keys", async (c) => {
    c.header("cache-control", `public, max-age=${JWKS_MAX_AGE_S}`);
    return c.json(await audit.jwks());
  });

  return app;
}
