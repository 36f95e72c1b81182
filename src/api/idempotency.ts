// Idempotent submits (API.md §3): the body fingerprint, and what a held key answers — the same
// customer, key and body replay the first 202 (same job); another body is 422; a first request still
// being admitted is 409 until its admission has surely been sent or given up (then the key is settled:
// src/queues/idempotency-store.ts). Kept 24 h.
import { createHash } from "node:crypto";
import { AppError } from "../core/errors.js";
import type { Reservation } from "../queues/idempotency-store.js";

/** Stable JSON: object keys sorted, so equal bodies hash equally whatever their key order. */
function canonical(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonical).join(",")}]`;
  if (value !== null && typeof value === "object") {
    const entries = Object.entries(value as Record<string, unknown>).sort(([a], [b]) =>
      a < b ? -1 : a > b ? 1 : 0,
    );
    return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${canonical(v)}`).join(",")}}`;
  }
  return JSON.stringify(value) ?? "null";
}

export function bodyFingerprint(body: unknown): string {
  return createHash("sha256").update(canonical(body)).digest("hex");
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
