// Idempotency keys of submits (API.md §3) in Redis: a reservation names the job its admission will
// create and is settled — replayed, or voided and taken over — never simply released while that job
// may still come to exist (the scripts idem_begin.lua and idem_release.lua say how).
import { createHash } from "node:crypto";
import type { RedisClient } from "../infra/redis-client.js";
import { defineScripts, type ScriptOptions } from "./scripts.js";
import { createKeys } from "./keys.js";

/** A response stored for replay. */
export interface StoredResponse {
  readonly status: number;
  readonly body: unknown;
  readonly headers: Readonly<Record<string, string>>;
}

/** What holds an idempotency key when a request asks for it. */
export type Reservation =
  /** The key is this request's: admit the job with the id it named. */
  | { readonly kind: "reserved" }
  /** An earlier request's response, to replay. */
  | { readonly kind: "replay"; readonly response: StoredResponse }
  /** An earlier request's job exists, but its response was never stored (its answer was lost). */
  | { readonly kind: "admitted"; readonly jobId: string }
  /** The key was used with another body. */
  | { readonly kind: "mismatch" }
  /** An earlier request may still be admitting its job, until `until` (ms). */
  | { readonly kind: "pending"; readonly until: number };

export interface IdempotencyStore {
  /**
   * Reserves `key` of `customer` for an admission of `jobId` that will be sent before `until` (ms) or
   * not at all, or reports what holds it (see {@link Reservation}). One atomic step.
   */
  begin(
    customer: string,
    key: string,
    fingerprint: string,
    jobId: string,
    until: number,
  ): Promise<Reservation>;
  /** Stores the response to replay for `key` (kept `ttlS`). */
  complete(customer: string, key: string, fingerprint: string, response: StoredResponse): Promise<void>;
  /**
   * Frees `key` after an admission of `jobId` that surely created no job, so the client may retry at
   * once; a reservation taken over by a later request, or holding a response, is left alone.
   */
  release(customer: string, key: string, jobId: string): Promise<boolean>;
}

export interface IdempotencyStoreOptions extends ScriptOptions {
  readonly redis: RedisClient;
  readonly prefix: string;
  readonly clock: () => number;
  /** How long a key is kept (pending or answered); API.md: 24 h. */
  readonly ttlS?: number;
  /** Lifetime of the marker of a voided admission (see admit_resolve.lua); default 86400. */
  readonly voidTtlS?: number;
}

/** The key as stored: its SHA-256, so any characters the client sends make a safe, bounded name. */
const keyHash = (key: string) => createHash("sha256").update(key).digest("hex");

export function createIdempotencyStore(opts: IdempotencyStoreOptions): IdempotencyStore {
  const keys = createKeys(opts.prefix);
  const run = defineScripts(opts.redis, opts.prefix, opts);
  const ttlS = opts.ttlS ?? 86_400;
  const voidTtlS = opts.voidTtlS ?? 86_400;

  return {
    async begin(customer, key, fingerprint, jobId, until) {
      const [kind, value = ""] = (await run("idem_begin", keys.queue, [
        customer,
        keyHash(key),
        fingerprint,
        jobId,
        opts.clock(),
        until,
        ttlS,
        voidTtlS,
      ])) as [string, string?];
      switch (kind) {
        case "reserved":
          return { kind };
        case "replay":
          return { kind, response: (JSON.parse(value) as { response: StoredResponse }).response };
        case "admitted":
          return { kind, jobId: value };
        case "mismatch":
          return { kind };
        default:
          return { kind: "pending", until: Number(value) };
      }
    },

    async complete(customer, key, fingerprint, response) {
      await opts.redis.set(
        keys.idempotency(customer, keyHash(key)),
        JSON.stringify({ fp: fingerprint, response }),
        "EX",
        ttlS,
      );
    },

    async release(customer, key, jobId) {
      return Number(await run("idem_release", keys.queue, [customer, keyHash(key), jobId])) === 1;
    },
  };
}
