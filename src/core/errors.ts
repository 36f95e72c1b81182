// Stable error codes (API.md §2) and the one error type that handlers throw.

/** Every error code the public API can answer with. */
export type ErrorCode =
  | "validation_error"
  | "invalid_json"
  | "empty_body"
  | "unauthorized"
  | "forbidden"
  | "not_found"
  | "method_not_allowed"
  | "conflict"
  | "idempotency_mismatch"
  | "request_too_large"
  | "headers_too_large"
  | "request_timeout"
  | "unsupported_media_type"
  | "range_not_satisfiable"
  | "rate_limited"
  | "queue_full"
  | "capacity_exhausted"
  | "unavailable"
  | "internal_error";

export const STATUS_OF: Readonly<Record<ErrorCode, number>> = {
  validation_error: 400,
  invalid_json: 400,
  empty_body: 400,
  unauthorized: 401,
  forbidden: 403,
  not_found: 404,
  method_not_allowed: 405,
  conflict: 409,
  idempotency_mismatch: 422,
  request_too_large: 413,
  headers_too_large: 431,
  request_timeout: 408,
  unsupported_media_type: 415,
  range_not_satisfiable: 416,
  rate_limited: 429,
  queue_full: 429,
  capacity_exhausted: 503,
  unavailable: 503,
  internal_error: 500,
};

export const TITLE_OF: Readonly<Record<ErrorCode, string>> = {
  validation_error: "Validation failed",
  invalid_json: "Invalid JSON",
  empty_body: "Empty body",
  unauthorized: "Unauthorized",
  forbidden: "Forbidden",
  not_found: "Not found",
  method_not_allowed: "Method not allowed",
  conflict: "Conflict",
  idempotency_mismatch: "Idempotency key reused with a different body",
  request_too_large: "Request too large",
  headers_too_large: "Request header fields too large",
  request_timeout: "Request timeout",
  unsupported_media_type: "Unsupported media type",
  range_not_satisfiable: "Range not satisfiable",
  rate_limited: "Rate limited",
  queue_full: "Queue full",
  capacity_exhausted: "Capacity exhausted",
  unavailable: "Service unavailable",
  internal_error: "Internal error",
};

/** Extra members of a problem document (`details`) and response headers that belong to an error. */
export interface AppErrorOptions {
  readonly details?: Readonly<Record<string, unknown>>;
  readonly headers?: Readonly<Record<string, string>>;
  readonly cause?: unknown;
}

/**
 * The one error type of the application. `api/problem.ts` turns it into problem+json; anything else
 * thrown becomes a generic 500 whose cause is logged, never sent.
 */
export class AppError extends Error {
  readonly code: ErrorCode;
  readonly status: number;
  readonly details: Readonly<Record<string, unknown>> | undefined;
  readonly headers: Readonly<Record<string, string>> | undefined;

  constructor(code: ErrorCode, message: string, options: AppErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = "AppError";
    this.code = code;
    this.status = STATUS_OF[code];
    this.details = options.details;
    this.headers = options.headers;
  }
}

export function isAppError(value: unknown): value is AppError {
  return value instanceof AppError;
}

/** What was thrown, as an Error (a thrown non-Error wrapped, its text as the message). */
export function toError(err: unknown): Error {
  return err instanceof Error ? err : new Error(String(err));
}

/** A 400 `validation_error` naming the offending field and the constraint it broke. */
export function validationError(field: string, constraint: string, message: string): AppError {
  return new AppError("validation_error", message, { details: { field, constraint } });
}
