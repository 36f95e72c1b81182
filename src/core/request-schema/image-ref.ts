// Image references (`image`, `mask`): the forms a value may take and what each one becomes.
import { validationError } from "../errors.js";
import { IMAGE_URL_MAX_CHARS, MAX_DATA_IMAGE_BYTES } from "../request-limits.js";
import type { DataMediaType, ImageRef } from "./types.js";

const DIGEST_BODY = "(?:sha256|blake3)-[0-9a-f]{64}";
const DIGEST_RE = new RegExp(`^${DIGEST_BODY}$`);
const OBJECT_PATH_RE = new RegExp(`/objects/(${DIGEST_BODY})$`);
const ASSET_PATH_RE = /\/assets\/(a_[A-Za-z0-9]{16,64})$/;
const DATA_PREFIX_RE = /^data:image\/(png|jpeg|jpg|webp);base64,/;
const BASE64_RE = /^[A-Za-z0-9+/]*={0,2}$/;
const MAX_BASE64_CHARS = Math.ceil(MAX_DATA_IMAGE_BYTES / 3) * 4;
export const REF_FORMS =
  "an https URL, a data:image/(png|jpeg|webp);base64 URI, a sha256 digest, or a gateway /objects/ or /assets/ URL";

export type RefResult = { ok: true; ref: ImageRef } | { ok: false; constraint: string; message: string };

export function classifyImageRef(value: string, field: string): RefResult {
  const bad = (constraint: string, message: string): RefResult => ({ ok: false, constraint, message });
  const data = DATA_PREFIX_RE.exec(value);
  if (data !== null) {
    const payload = value.slice(data[0].length);
    if (payload.length > MAX_BASE64_CHARS + 2) {
      return bad("max_bytes", `${field} data exceeds 1 MiB; upload it with POST /uploads instead`);
    }
    // The padding is counted, not matched with /=+$/: that regex retries from every `=` of a long run
    // (quadratic: 30,000 `=` and an `x` took 0.7 s).
    if (payload.length === 0 || !BASE64_RE.test(payload)) {
      return bad("format", `${field} data is not valid base64`);
    }
    const bare = payload.length - (payload.endsWith("==") ? 2 : payload.endsWith("=") ? 1 : 0);
    if (bare % 4 === 1) return bad("format", `${field} data is not valid base64`);
    const size = Math.floor((bare * 3) / 4);
    if (size === 0) return bad("format", `${field} data is empty`);
    if (size > MAX_DATA_IMAGE_BYTES) {
      return bad("max_bytes", `${field} data exceeds 1 MiB; upload it with POST /uploads instead`);
    }
    const sub = data[1] === "jpg" ? "jpeg" : data[1];
    return {
      ok: true,
      ref: { kind: "data", media_type: `image/${sub}` as DataMediaType, base64: payload, size },
    };
  }
  if (value.length > IMAGE_URL_MAX_CHARS)
    return bad("max_length", `${field} URL is longer than ${IMAGE_URL_MAX_CHARS}`);
  if (DIGEST_RE.test(value)) return { ok: true, ref: { kind: "digest", digest: value } };
  let path: string | undefined;
  let url: URL | undefined;
  try {
    url = new URL(value);
    path = url.pathname;
  } catch {
    // A bare gateway path (`/objects/...`, `/assets/...`) has no scheme; anything else is malformed.
    if (value.startsWith("/") && !value.startsWith("//")) path = value.split(/[?#]/, 1)[0];
  }
  if (path !== undefined) {
    const object = OBJECT_PATH_RE.exec(path);
    if (object?.[1] !== undefined)
      return { ok: true, ref: { kind: "digest", digest: object[1], url: value } };
    const asset = ASSET_PATH_RE.exec(path);
    if (asset?.[1] !== undefined) return { ok: true, ref: { kind: "asset", asset_id: asset[1], url: value } };
  }
  if (url !== undefined && url.protocol === "https:" && url.hostname !== "") {
    return { ok: true, ref: { kind: "url", url: value } };
  }
  return bad("format", `${field} must be ${REF_FORMS}`);
}

/**
 * Classifies an `image`/`mask` value: an https URL, a `data:image/(png|jpeg|jpg|webp);base64,` URI of at
 * most 1 MiB decoded, a digest `sha256-<64 hex>` (or `blake3-`), or a gateway object/asset URL of any
 * scheme (or a bare path) whose path ends in `/objects/<digest>` or `/assets/a_<16+ alnum>`.
 * @throws AppError 400 `validation_error` with `details.field` = `field`.
 */
export function parseImageRef(value: string, field = "image"): ImageRef {
  const r = classifyImageRef(value, field);
  if (!r.ok) throw validationError(field, r.constraint, r.message);
  return r.ref;
}

/** The decoded bytes of a `data` ref. */
export function dataRefBytes(ref: Extract<ImageRef, { kind: "data" }>): Uint8Array {
  return new Uint8Array(Buffer.from(ref.base64, "base64"));
}
