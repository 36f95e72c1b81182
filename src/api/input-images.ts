// Input images at admission: a customer URL is fetched by the gateway itself (the outbound client's
// connect-time checks, a size limit, a deadline), and every image that arrives as bytes (fetched or an
// inline `data:` URI) is checked by content and fully decoded before the CAS stores it.
import { AppError, validationError } from "../core/errors.js";
import {
  OutboundError,
  type ImageInspector,
  type InputImageType,
  type OutboundFailure,
  type OutboundHttp,
} from "../core/ports.js";
import { outboundUrlProblem, type OutboundPolicy } from "../core/webhook-target.js";

/** What admission needs to take an input image in. */
export interface InputImageDeps {
  /** The policy the outbound client enforces, for the fast check before anything is fetched. */
  readonly policy: OutboundPolicy;
  /** The outbound client (connect-time address checks, no redirects). */
  readonly http: OutboundHttp;
  readonly inspector: ImageInspector;
  /** Largest fetched image in bytes (`INPUT_IMAGE_MAX_BYTES`). */
  readonly maxBytes: number;
  /** Deadline of one fetch, connecting included (`INPUT_FETCH_TIMEOUT_MS`). */
  readonly fetchTimeoutMs: number;
}

/** The constraint (`details.constraint`) each outbound failure is reported as. */
const CONSTRAINT_OF: Readonly<Record<OutboundFailure, string>> = {
  bad_url: "public_https",
  blocked_target: "public_https",
  blocked_port: "port",
  redirect: "fetch",
  too_large: "max_bytes",
  timeout: "fetch",
  network: "fetch",
};

/**
 * The cheap check of an `image`/`mask` URL, before anything is fetched: scheme, port and a literal
 * host (no name is resolved here; the outbound client checks every address it connects to).
 * @throws AppError 400 `validation_error`, `details.field` = `field`, constraint `public_https` or `port`.
 */
export function checkInputImageUrl(field: string, url: string, deps: InputImageDeps): void {
  const problem = outboundUrlProblem(url, deps.policy);
  if (problem === undefined) return;
  const constraint = problem.reason === "port" ? "port" : "public_https";
  throw validationError(field, constraint, `${field}: the URL ${problem.message}`);
}

/**
 * Fetches an `image`/`mask` URL. Every failure is a 400 whose message says what went wrong without
 * naming an address the gateway resolved or reached.
 * @throws AppError 400 `validation_error`, `details.field` = `field`, constraint `public_https`,
 *   `port`, `fetch` or `max_bytes`.
 */
export async function fetchInputImage(field: string, url: string, deps: InputImageDeps): Promise<Uint8Array> {
  let res;
  try {
    res = await deps.http.request({ url, maxBytes: deps.maxBytes, timeoutMs: deps.fetchTimeoutMs });
  } catch (err) {
    if (err instanceof OutboundError) throw refusal(field, CONSTRAINT_OF[err.code], err.message, err);
    throw err;
  }
  if (res.status < 200 || res.status > 299) {
    throw validationError(field, "fetch", `${field}: fetching the URL answered HTTP ${res.status}`);
  }
  if (res.body.byteLength === 0) throw validationError(field, "fetch", `${field}: the URL answered no bytes`);
  return res.body;
}

/**
 * Checks image bytes by content (PNG, JPEG or WebP; `declared`, the type a `data:` URI named, must
 * match), the pixel limit, and a full decode.
 * @throws AppError 400 `validation_error`, `details.field` = `field`, constraint `media_type`,
 *   `max_pixels` or `decode`.
 */
export async function verifyInputImage(
  field: string,
  bytes: Uint8Array,
  declared: InputImageType | undefined,
  deps: InputImageDeps,
): Promise<void> {
  const verdict = await deps.inspector.inspect(bytes);
  if (!verdict.ok) throw validationError(field, verdict.reason, `${field} ${verdict.message}`);
  if (declared !== undefined && verdict.mediaType !== declared) {
    throw validationError(
      field,
      "media_type",
      `${field} is declared ${declared} but its bytes are ${verdict.mediaType}`,
    );
  }
}

/** A 400 for a failed fetch; the underlying error (addresses, socket errors) stays in `cause`, for logs. */
function refusal(field: string, constraint: string, message: string, cause: unknown): AppError {
  return new AppError("validation_error", `${field}: ${message}`, { details: { field, constraint }, cause });
}
