// Idempotent submits (API.md §3): the same customer, key and body replay the first 202 (same job);
// a different body is 422; a first request still being admitted is 409. Kept 24 h; a reservation
// whose admission never finished lapses after a minute so the key is not blocked for a day.
import { createHash } from "node:crypto";
import type { Redis } from "ioredis";
import { AppError } from "../core/errors.js";

const PENDING_TTL_S = 60;
const DONE_TTL_S = 86_400;

export interface StoredResponse {
  readonly status: number;
  readonly body: unknown;
  readonly headers: Record<string, string>;
}

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

export function createIdempotency(redis: Redis, prefix: string) {
  const keyOf = (customer: string, key: string) =>
    `${prefix}:idem:${customer}:${createHash("sha256").update(key).digest("hex")}`;

  return {
    /**
     * Reserves the key, or returns the response to replay.
     * @throws AppError idempotency_mismatch (422) for another body, conflict (409) while pending.
     */
    async begin(customer: string, key: string, fingerprint: string): Promise<StoredResponse | undefined> {
      const k = keyOf(customer, key);
      // One atomic step (SET … NX GET, Redis ≥ 7.0): reserve the key, or read what holds it. No window
      // in which the holder can lapse between the two.
      const raw = await redis.set(k, JSON.stringify({ fp: fingerprint }), "EX", PENDING_TTL_S, "NX", "GET");
      if (raw === null) return undefined;
      const stored = JSON.parse(raw) as { fp: string; response?: StoredResponse };
      if (stored.fp !== fingerprint) {
        throw new AppError(
          "idempotency_mismatch",
          "this idempotency key was used with a different request body",
          {
            details: { field: "idempotency_key" },
          },
        );
      }
      if (!stored.response) {
        throw new AppError("conflict", "a request with this idempotency key is still being admitted", {
          details: { field: "idempotency_key" },
          headers: { "retry-after": "1" },
        });
      }
      return stored.response;
    },
    async complete(
      customer: string,
      key: string,
      fingerprint: string,
      response: StoredResponse,
    ): Promise<void> {
      await redis.set(keyOf(customer, key), JSON.stringify({ fp: fingerprint, response }), "EX", DONE_TTL_S);
    },
    /** Frees the key after a failed admission, so the client may retry with it. */
    async abandon(customer: string, key: string): Promise<void> {
      await redis.del(keyOf(customer, key));
    },
  };
}
