// What customers read about a failed attempt or job: one fixed sentence per error code. A backend's
// own words, exception texts, addresses and paths go to the logs and the admins' attempt log only.
import type { JobError } from "./job.js";

/** Every code a job's `error` (and an attempt log entry's `error`) can carry. */
export type JobErrorCode =
  | "invalid_request"
  | "input_missing"
  | "input_refused"
  | "backend_error"
  | "backend_timeout"
  | "backend_busy"
  | "backend_unavailable"
  | "interrupted"
  | "cancelled"
  | "ttl_expired"
  | "worker_lost";

/**
 * The customer-visible message of each code. `cancelled`, `ttl_expired` and `worker_lost` are written
 * by the scheduler's Lua scripts (cancel.lua, lib.lua, expire.lua, reap.lua), which spell the same
 * texts (test/unit/job-error-vocabulary.test.ts holds them to this table); finish.lua and reap.lua
 * append " (after N attempts)" when a job runs out of attempts.
 */
export const JOB_ERROR_MESSAGE: Readonly<Record<JobErrorCode, string>> = {
  invalid_request: "the GPU backend rejected the request",
  input_missing: "an input image is no longer stored",
  input_refused: "an input image was given as an external URL, which is never passed to a backend",
  backend_error: "the GPU backend failed",
  backend_timeout: "the GPU backend did not finish within the execution timeout",
  backend_busy: "the GPU backend was busy",
  backend_unavailable: "no GPU backend was available",
  interrupted: "the attempt was interrupted",
  cancelled: "cancelled by the client",
  ttl_expired: "not started within its ttl",
  worker_lost: "the worker running the job stopped answering",
};

/** The public error of `code`: its fixed message, never anything the caller could pass in. */
export function jobError(code: JobErrorCode, retriable: boolean): JobError {
  return { code, message: JOB_ERROR_MESSAGE[code], retriable };
}
