// Idempotent submits (API.md §3): the body fingerprint, and what a held key answers — the same
// customer, key and body replay the first 202 (same job); another body is 422; a first request still
// being admitted is 409 until its admission has surely been sent or given up (then the key is settled:
// src/queues/idempotency-store.ts). Kept 24 h.
import { createHash } from "node:crypto";
import { CanonicalJsonError, canonicalBytes } from "../core/canonical-json.js";
import { AppError, validationError } from "../core/errors.js";
import type { Reservation } from "../queues/idempotency-store.js";

/**
 * SHA-256 (hex) of the body's RFC 8785 canonical bytes (core/canonical-json.ts, as audit records
 * use): equal bodies hash equally whatever their key order or number spelling. For a parsed JSON body
 * this is the same text the earlier sorted-keys serializer gave, so fingerprints held across an
 * upgrade still match.
 * @throws AppError 400 `validation_error` for a body RFC 8785 cannot carry (JSON can spell a lone
 *   surrogate, `"\ud800"`, which is no Unicode text; nesting deeper than 256).
 */
export function bodyFingerprint(body: unknown): string {
  let bytes: Uint8Array;
  try {
    bytes = canonicalBytes(body);
  } catch (err) {
    if (!(err instanceof CanonicalJsonError)) throw err;
    // Not err.path: it may hold the very lone surrogate (a member name) or be as long as the body.
    throw validationError(
      "body",
      "format",
      `the body cannot be canonicalized (RFC 8785): it holds ${err.what}`,
    );
  }
  return createHash("sha256").update(bytes).digest("hex");
}

/**
 * The problem a held key answers with, or undefined when the request may go on (reserved, a replay,
 * or an earlier request's job to replay).
 * @param now the caller's clock (ms), for `Retry-After` while pending.
 */
export function reservationProblem(r: Reservation, now: number): AppError | undefined {
  if (r.kind === "mismatch") {
    return new AppError(
      "idempotency_mismatch",
      "this idempotency key was used with a different request body",
      {
        details: { field: "idempotency_key" },
      },
    );
  }
  if (r.kind === "pending") {
    const retry = Math.max(1, Math.ceil((r.until - now) / 1000));
    return new AppError("conflict", "a request with this idempotency key is still being admitted", {
      details: { field: "idempotency_key" },
      headers: { "retry-after": String(retry) },
    });
  }
  return undefined;
}
