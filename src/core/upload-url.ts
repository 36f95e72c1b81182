// Presigned upload URLs (API.md §3 Uploads): what an upload may carry, and the HMAC that binds a PUT
// URL to one asset, its exact size, its content type and its expiry.
import { createHmac, timingSafeEqual } from "node:crypto";
import { validationError } from "./errors.js";
import { JSON_BODY_LIMITS, SHOWN_KEY_MAX_CHARS } from "./request-limits.js";

/** Largest upload: 50 MiB (API.md §2, §3 Uploads). */
export const UPLOAD_MAX_BYTES = 50 * 1024 * 1024;

/** The content types an upload may declare (the input image types). */
export const UPLOAD_CONTENT_TYPES = ["image/png", "image/jpeg", "image/webp"] as const;
export type UploadContentType = (typeof UPLOAD_CONTENT_TYPES)[number];

/** Asset ids: `a_` + 16–64 alphanumerics (the generator makes 22). */
export const ASSET_ID_RE = /^a_[A-Za-z0-9]{16,64}$/;

/** Longest asset id in a path. */
export const ASSET_ID_MAX_CHARS = 66;

/** What an upload URL is bound to. */
export interface UploadGrant {
  readonly assetId: string;
  /** The exact size of the body the PUT must carry. */
  readonly bytes: number;
  readonly contentType: UploadContentType;
  /** Unix seconds after which the URL no longer works. */
  readonly expUnixS: number;
}

/** Canonical decimal unix seconds: no sign, no leading zeros, at most 16 digits. */
const EXP_RE = /^[1-9][0-9]{0,15}$/;
/** An unpadded base64url HMAC-SHA256 is always 43 characters. */
const SIG_RE = /^[A-Za-z0-9_-]{43}$/;

export function isAssetId(value: string): boolean {
  return ASSET_ID_RE.test(value);
}

export function isUploadContentType(value: unknown): value is UploadContentType {
  return typeof value === "string" && (UPLOAD_CONTENT_TYPES as readonly string[]).includes(value);
}

function assertGrant(key: Uint8Array, g: UploadGrant): void {
  if (!(key instanceof Uint8Array) || key.byteLength === 0) throw new TypeError("key must be non-empty");
  if (!isAssetId(g.assetId)) throw new TypeError("assetId must be a_<16-64 alnum>");
  if (!Number.isSafeInteger(g.bytes) || g.bytes < 1 || g.bytes > UPLOAD_MAX_BYTES) {
    throw new RangeError(`bytes must be an integer 1..${UPLOAD_MAX_BYTES}`);
  }
  if (!isUploadContentType(g.contentType)) throw new TypeError("contentType is not an upload type");
  if (!Number.isSafeInteger(g.expUnixS) || g.expUnixS < 1) throw new RangeError("expUnixS must be > 0");
}

/** The MAC: every bound value on its own line, so no two grants share an input. */
function mac(key: Uint8Array, g: UploadGrant): string {
  return createHmac("sha256", key)
    .update(`upload\n${g.assetId}\n${g.bytes}\n${g.contentType}\n${g.expUnixS}`, "utf8")
    .digest("base64url");
}

/**
 * The path (no origin) of the presigned PUT of `grant`:
 * `/uploads/<asset id>?exp=<unix s>&sig=<base64url HMAC-SHA256 over id, size, type and expiry>`.
 * Size and type are not in the URL: the PUT reads them from the asset's record and the signature
 * only verifies when they are the ones it was made for.
 * @throws TypeError / RangeError for a grant outside the upload bounds (a wiring bug).
 */
export function signUploadPath(key: Uint8Array, grant: UploadGrant): string {
  assertGrant(key, grant);
  return `/uploads/${grant.assetId}?exp=${grant.expUnixS}&sig=${mac(key, grant)}`;
}

/** Why an upload URL does not authorise a PUT. */
export type UploadUrlProblem = "malformed" | "expired" | "signature";

/**
 * Checks the `exp` and `sig` of a PUT against the grant they claim (`expUnixS` taken from `exp`):
 * undefined when they authorise it, else why not. `nowMs` past the expiry (`exp` · 1000) →
 * `expired`; a missing, non-canonical or wrong signature → `malformed`/`signature`. The comparison
 * is constant-time over the canonical base64url text.
 * @throws TypeError / RangeError only for a key, grant or clock value that is not usable (wiring bugs).
 */
export function checkUploadSignature(
  key: Uint8Array,
  grant: Omit<UploadGrant, "expUnixS">,
  exp: string | undefined,
  sig: string | undefined,
  nowMs: number,
): UploadUrlProblem | undefined {
  if (!Number.isFinite(nowMs)) throw new TypeError("nowMs must be a finite number");
  if (typeof exp !== "string" || !EXP_RE.test(exp)) return "malformed";
  if (typeof sig !== "string" || !SIG_RE.test(sig)) return "malformed";
  const expUnixS = Number(exp);
  if (!Number.isSafeInteger(expUnixS)) return "malformed";
  const full = { ...grant, expUnixS };
  assertGrant(key, full);
  const expected = Buffer.from(mac(key, full), "latin1");
  const given = Buffer.from(sig, "latin1");
  if (!(expected.length === given.length && timingSafeEqual(expected, given))) return "signature";
  // Checked after the signature, so an expired answer is only given for a URL the gateway issued.
  if (nowMs >= expUnixS * 1000) return "expired";
  return undefined;
}

/** A `POST /uploads` body after its checks. */
export interface UploadRequest {
  readonly contentType: UploadContentType;
  readonly bytes: number;
}

const UPLOAD_FIELDS: ReadonlySet<string> = new Set(["content_type", "bytes"]);

/**
 * Checks a `POST /uploads` body: `{content_type, bytes}`, `content_type` one of
 * {@link UPLOAD_CONTENT_TYPES}, `bytes` an integer 1..{@link UPLOAD_MAX_BYTES}, nothing else.
 * @throws AppError 400 `validation_error` with `details.field` (`body`, `content_type`, `bytes` or
 *   the unknown member) and `details.constraint` (`type`, `max_members`, `unknown`, `required`,
 *   `enum`, `integer`, `range`).
 */
export function parseUploadRequest(body: unknown): UploadRequest {
  if (body === null || typeof body !== "object" || Array.isArray(body)) {
    throw validationError("body", "type", "request body must be a JSON object");
  }
  const keys = Object.keys(body);
  if (keys.length > JSON_BODY_LIMITS.maxMembers) {
    throw validationError(
      "body",
      "max_members",
      `request body has more than ${JSON_BODY_LIMITS.maxMembers} members`,
    );
  }
  for (const key of keys) {
    if (UPLOAD_FIELDS.has(key)) continue;
    const shown = key.length > SHOWN_KEY_MAX_CHARS ? `${key.slice(0, SHOWN_KEY_MAX_CHARS)}…` : key;
    throw validationError(
      shown,
      "unknown",
      `unknown field ${shown} in an upload (its fields: content_type, bytes)`,
    );
  }
  const { content_type: type, bytes } = body as Record<string, unknown>;
  const types = UPLOAD_CONTENT_TYPES.join(", ");
  if (type === undefined || type === null)
    throw validationError("content_type", "required", "content_type is required");
  if (!isUploadContentType(type)) {
    throw validationError("content_type", "enum", `content_type must be one of ${types}`);
  }
  if (bytes === undefined || bytes === null) throw validationError("bytes", "required", "bytes is required");
  if (typeof bytes !== "number" || !Number.isSafeInteger(bytes)) {
    throw validationError("bytes", "integer", "bytes must be an integer (the size of the upload)");
  }
  if (bytes < 1 || bytes > UPLOAD_MAX_BYTES) {
    throw validationError("bytes", "range", `bytes must be between 1 and ${UPLOAD_MAX_BYTES} (50 MiB)`);
  }
  return { contentType: type, bytes };
}
