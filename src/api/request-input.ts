// Header and query values that routes read, each with its bound (core/request-limits.ts): an
// over-long value is a 400 naming it, never unbounded work on it or an echo of it; and values that
// error messages repeat, cut when long.
import type { Context } from "hono";
import { validationError } from "../core/errors.js";
import { SHOWN_VALUE_MAX_CHARS } from "../core/request-limits.js";
import { requestHeader } from "./respond.js";

/**
 * The request header `name` (as documented, e.g. `Idempotency-Key`), or undefined when absent.
 * @throws AppError 400 `validation_error` with `details.field` = `name` and `max_length` when it is
 *   longer than `max` characters.
 */
export function boundedHeader(c: Context, name: string, max: number): string | undefined {
  const value = requestHeader(c, name.toLowerCase());
  if (value !== undefined && value.length > max) {
    throw validationError(name, "max_length", `the ${name} header must be at most ${max} characters`);
  }
  return value;
}

/**
 * The first query value `name`, or undefined when absent.
 * @throws AppError 400 `validation_error` with `details.field` = `name` and `max_length` when it is
 *   longer than `max` characters.
 */
export function boundedQuery(c: Context, name: string, max: number): string | undefined {
  const value = c.req.query(name);
  if (value !== undefined && value.length > max) {
    throw validationError(name, "max_length", `${name} must be at most ${max} characters`);
  }
  return value;
}

/** A value of the request (a path, a content type) as an error message repeats it: cut when long. */
export function shownValue(value: string, max = SHOWN_VALUE_MAX_CHARS): string {
  return value.length > max ? `${value.slice(0, max)}…` : value;
}
