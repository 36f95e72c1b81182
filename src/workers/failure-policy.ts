// The failure policy in one table (STYLE.md habit 5): the error decides the job's fate.
import type { JobError } from "../core/job.js";
import { jobError } from "../core/job-errors.js";
import { BackendHttpError } from "./backends/kserve-client.js";
import { InputMissingError, InputUrlRefusedError } from "./infer-request.js";

export type AbortReason = "cancelled" | "timeout" | "lost" | "shutdown";

export class AttemptAbort extends Error {
  constructor(readonly reason: AbortReason) {
    super(`attempt aborted: ${reason}`);
    this.name = "AttemptAbort";
  }
}

/** Raised by this process's circuit breaker when it is open (the backend is not called). */
export class BreakerOpenError extends Error {
  constructor(readonly backend: string) {
    super(`circuit breaker of ${backend} is open`);
    this.name = "BreakerOpenError";
  }
}

/**
 * What happened to an attempt. `error` is what the customer sees: a code and that code's fixed
 * message (core/job-errors.ts). `detail` is what really happened (the backend's status and answer,
 * the exception's text, addresses): logged and kept in the attempt log, which only admins see.
 */
export type Verdict = (
  | { readonly outcome: "failed"; readonly error: JobError }
  | { readonly outcome: "retry"; readonly error: JobError }
  | {
      readonly outcome: "busy";
      readonly error: JobError;
      /**
       * The backend itself said it is busy (or refused): every worker leaves it alone briefly. A
       * breaker open in this process only, a backend this process does not know, or our own abort
       * is not the backend's state.
       */
      readonly coolDown: boolean;
    }
) & { readonly detail: string };

/** Longest `detail` kept (the backend's answer is already cut to 300 characters). */
const MAX_DETAIL_CHARS = 500;

function detailOf(err: unknown): string {
  const text = err instanceof Error ? `${err.name}: ${err.message}` : String(err);
  return text.length > MAX_DETAIL_CHARS ? `${text.slice(0, MAX_DETAIL_CHARS)}…` : text;
}

/**
 * | cause                                   | job                                        |
 * |-----------------------------------------|--------------------------------------------|
 * | backend 4xx (not 408/429)               | error, `invalid_request`, not retriable     |
 * | backend 429 / 503                       | busy: back to waiting, no attempt spent,    |
 * |                                         | and the backend cools down                  |
 * | connection refused (backend not up)     | busy, and the backend cools down            |
 * | breaker open (or backend unknown here)  | busy, no cool-down                          |
 * | backend 5xx, 408, reset                 | retry with backoff (`backend_error`)        |
 * | execution timeout                       | retry with backoff (`backend_timeout`)      |
 * | an input image missing from the CAS      | error, `input_missing`, not retriable       |
 * | an input image stored as an external URL | error, `input_refused`, not retriable       |
 * | unreadable answer, any other exception  | retry with backoff (`backend_error`)        |
 * | our own abort: shutdown, cancel, lost    | busy (the job is handed back, or it already |
 * |                                          | moved on and the settle is rejected)        |
 */
export function classify(err: unknown): Verdict {
  const detail = detailOf(err);
  if (err instanceof AttemptAbort) {
    if (err.reason === "timeout")
      return { outcome: "retry", error: jobError("backend_timeout", true), detail };
    return { outcome: "busy", error: jobError("interrupted", true), coolDown: false, detail };
  }
  if (err instanceof InputMissingError) {
    return { outcome: "failed", error: jobError("input_missing", false), detail };
  }
  if (err instanceof InputUrlRefusedError) {
    return { outcome: "failed", error: jobError("input_refused", false), detail };
  }
  if (err instanceof BreakerOpenError) {
    return { outcome: "busy", error: jobError("backend_unavailable", true), coolDown: false, detail };
  }
  if (err instanceof BackendHttpError) {
    if (err.status === 429 || err.status === 503) {
      return { outcome: "busy", error: jobError("backend_busy", true), coolDown: true, detail };
    }
    if (err.status >= 400 && err.status < 500 && err.status !== 408) {
      return { outcome: "failed", error: jobError("invalid_request", false), detail };
    }
    return { outcome: "retry", error: jobError("backend_error", true), detail };
  }
  if (isConnectRefused(err)) {
    return { outcome: "busy", error: jobError("backend_unavailable", true), coolDown: true, detail };
  }
  // An unreadable answer, a reset connection or any other exception.
  return { outcome: "retry", error: jobError("backend_error", true), detail };
}

/** A connection that never reached the backend: the request did no GPU work and costs no attempt. */
export function isConnectRefused(err: unknown): boolean {
  const code = (err as { code?: unknown } | null)?.code;
  return code === "ECONNREFUSED" || code === "UND_ERR_CONNECT_TIMEOUT";
}

/** True when the error counts against the backend's breaker: its failures, not bad requests, busy answers or our aborts. */
export function tripsBreaker(err: unknown): boolean {
  if (isConnectRefused(err)) return true;
  return classify(err).outcome === "retry";
}

/** Exponential backoff with full jitter: uniform in [0, min(max, base * 2^spent)]. */
export function backoffMs(
  spent: number,
  baseMs: number,
  maxMs: number,
  random: () => number = Math.random,
): number {
  const cap = Math.min(maxMs, baseMs * 2 ** Math.max(0, spent));
  return Math.floor(random() * cap);
}
