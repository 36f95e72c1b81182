// Header and query values that routes read, each with its bound (core/request-limits.ts): an
// over-long value is a 400 naming it, never unbounded work on it or an echo of it.
import type { Context } from "hono";
import { validationError } from "../core/errors.js";
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
