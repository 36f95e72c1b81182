// The failure policy in one table (STYLE.md habit 5): the error decides the job's fate.
import type { JobError } from "../core/job.js";
import { BackendHttpError, BackendProtocolError, isNetworkError } from "./backends/kserve-client.js";
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

export type Verdict =
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
    };

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
  if (err instanceof AttemptAbort) {
    if (err.reason === "timeout") {
      return {
        outcome: "retry",
        error: {
          code: "backend_timeout",
          message: "the backend did not answer within the execution timeout",
          retriable: true,
        },
      };
    }
    return {
      outcome: "busy",
      error: { code: "interrupted", message: `attempt interrupted (${err.reason})`, retriable: true },
      coolDown: false,
    };
  }
  if (err instanceof InputMissingError) {
    return { outcome: "failed", error: { code: "input_missing", message: err.message, retriable: false } };
  }
  if (err instanceof InputUrlRefusedError) {
    return { outcome: "failed", error: { code: "input_refused", message: err.message, retriable: false } };
  }
  if (err instanceof BreakerOpenError) {
    return {
      outcome: "busy",
      error: { code: "backend_unavailable", message: err.message, retriable: true },
      coolDown: false,
    };
  }
  if (err instanceof BackendHttpError) {
    if (err.status === 429 || err.status === 503) {
      return {
        outcome: "busy",
        error: { code: "backend_busy", message: err.message, retriable: true },
        coolDown: true,
      };
    }
    if (err.status >= 400 && err.status < 500 && err.status !== 408) {
      return {
        outcome: "failed",
        error: { code: "invalid_request", message: err.message, retriable: false },
      };
    }
    return { outcome: "retry", error: { code: "backend_error", message: err.message, retriable: true } };
  }
  if (err instanceof BackendProtocolError) {
    return { outcome: "retry", error: { code: "backend_error", message: err.message, retriable: true } };
  }
  if (isConnectRefused(err)) {
    return {
      outcome: "busy",
      error: { code: "backend_unavailable", message: "the backend refused the connection", retriable: true },
      coolDown: true,
    };
  }
  if (isNetworkError(err)) {
    return {
      outcome: "retry",
      error: {
        code: "backend_error",
        message: `connection to the backend failed: ${(err as Error).message}`,
        retriable: true,
      },
    };
  }
  return {
    outcome: "retry",
    error: {
      code: "backend_error",
      message: err instanceof Error ? err.message : String(err),
      retriable: true,
    },
  };
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
