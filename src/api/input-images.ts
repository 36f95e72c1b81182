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
  /** The bytes of input images admissions of this process may hold at once (`INPUT_IMAGE_BUDGET_BYTES`). */
  readonly budget: ImageBudget;
}

/** Bytes of input images held by one admission, given back when it is done with them. */
export interface ImageHold {
  /** Keeps only `bytes` of the hold (a fetch that turned out smaller than the most it could be). */
  shrink(bytes: number): void;
  /** Gives the hold back. Idempotent. */
  release(): void;
}

/**
 * A per-process budget of input-image bytes in admissions: from the start of a fetch (the most it
 * may bring, `INPUT_IMAGE_MAX_BYTES`, until it is in) or from the decoding of an inline image, through
 * the decode (which waits its turn, INPUT_DECODE_CONCURRENCY at a time) to the CAS. Without it,
 * concurrent admissions with image URLs held the fetched bytes of every one of them while they
 * waited to be decoded: memory without bound, from one token.
 */
export interface ImageBudget {
  /**
   * Holds `bytes` of the budget.
   * @throws AppError 503 `unavailable` with `Retry-After` when the budget cannot hold them.
   */
  take(bytes: number): ImageHold;
  /** Bytes held now. */
  held(): number;
}

/** A budget of `budgetBytes`; a single image larger than the whole budget is still taken alone. */
export function createImageBudget(budgetBytes: number): ImageBudget {
  let held = 0;
  return {
    take(bytes) {
      if (held > 0 && held + bytes > budgetBytes) {
        throw new AppError("unavailable", "too many input images are being taken in; retry shortly", {
          headers: { "retry-after": "1" },
        });
      }
      held += bytes;
      let mine = bytes;
      return {
        shrink(to) {
          const less = Math.max(0, mine - Math.max(0, to));
          mine -= less;
          held -= less;
        },
        release() {
          held -= mine;
          mine = 0;
        },
      };
    },
    held: () => held,
  };
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
