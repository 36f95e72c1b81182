// Uploads (API.md §3; docs/decisions.md "Uploads"): POST /uploads hands out a presigned PUT URL and
// an asset URL; PUT /uploads/{id} (no token: the signature authorises it) streams exactly the
// declared bytes into the CAS, checks them as an image, and marks the asset done; GET /assets/{id}
// redirects its owner to the object's signed URL.
import { randomBytes } from "node:crypto";
import { Hono, type Context } from "hono";
import { AppError, validationError } from "../../core/errors.js";
import { rfc3339 } from "../../core/time.js";
import {
  checkUploadSignature,
  isAssetId,
  parseUploadRequest,
  signUploadPath,
  type UploadUrlProblem,
} from "../../core/upload-url.js";
import type { AssetRecord, AssetStore } from "../../queues/asset-store.js";
import type { ApiEnv } from "../context.js";
import type { ApiDeps } from "../deps.js";
import type { ImageBudget } from "../input-images.js";
import type { RateLimiter } from "../rate-limits.js";
import { shownValue } from "../request-input.js";
import { requestHeader } from "../respond.js";
import {
  UploadAborted,
  checkedUpload,
  requestChunks,
  tooFewBytes,
  tooManyBytes,
  wrongType,
} from "../upload-body.js";

/** What the upload routes need besides {@link ApiDeps}. */
export interface UploadRouteDeps {
  readonly assets: AssetStore;
  /** The process's budget of image bytes held for decoding (input-images.ts): an upload's decode takes its share. */
  readonly imageBudget: ImageBudget;
  /** The per-customer quotas: `POST /uploads` takes a unit of the caller's reads per second. */
  readonly limiter: RateLimiter;
}

/** A claim outlives the longest PUT the server lets through by this much. */
const CLAIM_MARGIN_MS = 5_000;

const URL_PROBLEM: Readonly<Record<UploadUrlProblem | "unknown", string>> = {
  malformed: "is not valid (no expiry or signature)",
  signature: "is not valid (its signature does not match)",
  expired: "has expired",
  unknown: "is not valid or has expired",
};

/** 403 for a PUT the URL does not authorise; the same for an unknown asset as for a bad signature. */
function refused(why: UploadUrlProblem | "unknown"): AppError {
  return new AppError("forbidden", `this upload URL ${URL_PROBLEM[why]}; ask POST /uploads for a new one`);
}

/** 409 for a PUT of an asset that has its bytes, or whose other PUT is streaming. */
function conflict(id: string, busy: boolean): AppError {
  return new AppError(
    "conflict",
    busy ? `another upload of asset ${id} is in progress` : `asset ${id} has been uploaded already`,
  );
}

/**
 * The PUT's headers against the asset: a `Content-Type` other than the declared one (or the
 * generic application/octet-stream) is 415; a `Content-Length` above the declared size 413, below
 * it 400 — all before a byte of the body is read.
 */
function checkHeaders(c: Context, asset: AssetRecord): void {
  const type = requestHeader(c, "content-type")?.split(";")[0]?.trim().toLowerCase();
  if (type && type !== asset.contentType && type !== "application/octet-stream") {
    throw new AppError(
      "unsupported_media_type",
      `the upload was declared ${asset.contentType} but the request's Content-Type is ${shownValue(type)}`,
      { details: { field: "content_type", constraint: "media_type" } },
    );
  }
  const length = requestHeader(c, "content-length");
  if (length === undefined || requestHeader(c, "transfer-encoding") !== undefined) return;
  const declared = Number(length);
  if (declared > asset.bytes) throw tooManyBytes(asset.bytes);
  if (declared < asset.bytes) throw tooFewBytes(declared, asset.bytes);
}

export function uploadRoutes(deps: ApiDeps, extra: UploadRouteDeps) {
  const app = new Hono<ApiEnv>();
  const cfg = deps.config.uploads;
  const claimMs = cfg.putTimeoutMs + CLAIM_MARGIN_MS;

  app.post("/uploads", async (c) => {
    const principal = c.get("principal");
    if (deps.redisNearLimit()) {
      throw new AppError("unavailable", "the job store is near its memory limit; retry later", {
        headers: { "retry-after": "5" },
      });
    }
    const req = parseUploadRequest(await deps.bodies.readJson(c));
    // A small write per call, counted with the caller's reads (a flood of them is refused with 429).
    const rate = await extra.limiter.take("reads", principal);
    if (rate) for (const [name, value] of Object.entries(rate)) c.header(name, value);
    const id = deps.ids("asset");
    const now = deps.clock();
    const expUnixS = Math.ceil(now / 1000) + cfg.urlTtlS;
    // Kept while its URL works and a PUT started at the last moment may still be streaming.
    const keepMs = expUnixS * 1000 - now + claimMs;
    await extra.assets.create(
      { id, customerId: principal.customerId, contentType: req.contentType, bytes: req.bytes, expUnixS },
      keepMs,
    );
    const path = signUploadPath(cfg.key, {
      assetId: id,
      bytes: req.bytes,
      contentType: req.contentType,
      expUnixS,
    });
    return c.json({
      upload_url: deps.present.absolute(path),
      asset_url: deps.present.absolute(`/assets/${id}`),
      expires_at: rfc3339(expUnixS * 1000),
    });
  });

  app.put("/uploads/:id", async (c) => {
    const id = c.req.param("id");
    if (!isAssetId(id)) throw refused("unknown");
    const asset = await extra.assets.read(id);
    if (!asset) throw refused("unknown");
    const grant = { assetId: id, bytes: asset.bytes, contentType: asset.contentType };
    const problem = checkUploadSignature(
      cfg.key,
      grant,
      c.req.query("exp"),
      c.req.query("sig"),
      deps.clock(),
    );
    if (problem) throw refused(problem);
    if (asset.state === "done") throw conflict(id, false);
    checkHeaders(c, asset);

    const token = randomBytes(12).toString("base64url");
    const claim = await extra.assets.claim(id, token, deps.clock(), claimMs);
    if (claim === "missing") throw refused("expired");
    if (claim !== "claimed") throw conflict(id, claim === "busy");
    let digest: string;
    try {
      ({ digest } = await deps.blobs.putStream(checkedUpload(requestChunks(c), asset)));
      await inspectUpload(digest, asset);
      const pinUntil = deps.clock() + cfg.retentionS * 1000;
      if (!(await extra.assets.complete(id, token, digest, cfg.retentionS, pinUntil))) {
        throw new AppError("conflict", `the upload of asset ${id} was taken over by another PUT`);
      }
    } catch (err) {
      await extra.assets.release(id, token).catch(() => false);
      if (err instanceof UploadAborted) {
        throw new AppError("validation_error", "the body ended early: the client closed the connection", {
          details: { field: "body", constraint: "size" },
          cause: err,
        });
      }
      throw err;
    }
    return c.json({ digest, url: deps.present.objectUrl(digest) }, 201);
  });

  /**
   * Decodes the stored upload as input images are decoded (pixel limit, full decode), holding its
   * size of the process's image budget meanwhile.
   * @throws AppError 400 `validation_error` (field `body`, constraint `media_type`, `max_pixels` or
   *   `decode`); 503 `unavailable` when the image budget is spent.
   */
  async function inspectUpload(digest: string, asset: AssetRecord): Promise<void> {
    const hold = extra.imageBudget.take(asset.bytes);
    try {
      const bytes = await deps.blobs.get(digest);
      if (bytes === undefined) {
        throw new AppError("unavailable", "the upload was not stored; retry the PUT", {
          headers: { "retry-after": "1" },
        });
      }
      const verdict = await deps.imageInspector.inspect(bytes);
      if (!verdict.ok) throw validationError("body", verdict.reason, `the upload ${verdict.message}`);
      if (verdict.mediaType !== asset.contentType) throw wrongType(asset.contentType, verdict.mediaType);
    } finally {
      hold.release();
    }
  }

  app.get("/assets/:id", async (c) => {
    const principal = c.get("principal");
    const id = c.req.param("id");
    const notFound = () => new AppError("not_found", `asset ${shownValue(id)} not found`);
    if (!isAssetId(id)) throw notFound();
    const asset = await extra.assets.read(id);
    if (!asset || (!principal.admin && asset.customerId !== principal.customerId)) throw notFound();
    if (asset.state !== "done" || asset.digest === undefined) {
      throw new AppError(
        "conflict",
        `asset ${id} has no uploaded bytes yet: PUT them to its upload_url first`,
      );
    }
    c.header("location", deps.present.objectUrl(asset.digest));
    c.header("cache-control", "private, no-cache");
    return c.body(null, 302);
  });

  return app;
}
