// Wording of the parser's problems: a zod issue as the API's 400, and an unknown field with a hint.
import type { z } from "zod";
import { validationError, type AppError } from "../errors.js";
import { SHOWN_KEY_MAX_CHARS } from "../request-limits.js";

/**
 * The 400 for a body member outside the route's fields: `unknown field <key> in <what>`, with the
 * allowed name nearest to it as a hint (`did you mean …?`); the key is shown cut.
 */
export function unknownFieldError(key: string, allowed: ReadonlySet<string>, what: string): AppError {
  const guess = closest(key, [...allowed]);
  const hint = guess === undefined ? "" : ` (did you mean ${guess}?)`;
  const shown = shownKey(key);
  return validationError(shown, "unknown", `unknown field ${shown} in ${what}${hint}`);
}

/** A key as error messages show it: cut at {@link SHOWN_KEY_MAX_CHARS} characters. */
function shownKey(key: string): string {
  return key.length > SHOWN_KEY_MAX_CHARS ? `${key.slice(0, SHOWN_KEY_MAX_CHARS)}…` : key;
}

/**
 * The allowed name within edit distance 2 of `key`, if any: a hint for typos. Cheap whatever the
 * key: names whose length differs by 3 or more are skipped before any work, so a key is compared
 * only with names of about its length (the longest is 15 characters).
 */
function closest(key: string, allowed: readonly string[]): string | undefined {
  let best: string | undefined;
  let bestD = 3;
  for (const name of allowed) {
    const d = editDistance(key, name, bestD);
    if (d < bestD) {
      best = name;
      bestD = d;
    }
  }
  return best;
}

function editDistance(a: string, b: string, cap: number): number {
  if (Math.abs(a.length - b.length) >= cap) return cap;
  let prev = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const cur = [i];
    for (let j = 1; j <= b.length; j++) {
      const sub = (prev[j - 1] ?? 0) + (a[i - 1] === b[j - 1] ? 0 : 1);
      cur.push(Math.min(sub, (prev[j] ?? 0) + 1, (cur[j - 1] ?? 0) + 1));
    }
    prev = cur;
  }
  return prev[b.length] ?? cap;
}

function valueAt(body: unknown, path: readonly PropertyKey[]): unknown {
  let v: unknown = body;
  for (const p of path) {
    if (v === null || typeof v !== "object") return undefined;
    v = (v as Record<PropertyKey, unknown>)[p];
  }
  return v;
}

/** Turns the first zod issue into the API's 400 with a dotted `details.field` (`lora.0.weight`). */
export function issueError(issue: z.core.$ZodIssue, body: unknown): AppError {
  const field = issue.path.map(String).join(".");
  switch (issue.code) {
    case "unrecognized_keys": {
      const key = shownKey(issue.keys[0] ?? "");
      const f = field === "" ? key : `${field}.${key}`;
      return validationError(f, "unknown", `unknown field ${f}`);
    }
    case "custom": {
      const constraint =
        typeof issue.params?.["constraint"] === "string" ? issue.params["constraint"] : "invalid";
      return validationError(field, constraint, issue.message);
    }
    case "too_small":
    case "too_big": {
      const low = issue.code === "too_small";
      const constraint =
        issue.origin === "string"
          ? low
            ? "min_length"
            : "max_length"
          : issue.origin === "array"
            ? low
              ? "min_items"
              : "max_items"
            : low
              ? "minimum"
              : "maximum";
      return validationError(field, constraint, issue.message);
    }
    case "invalid_type": {
      const value = valueAt(body, issue.path);
      const constraint =
        value === undefined
          ? "required"
          : issue.expected === "int" && typeof value === "number"
            ? "integer"
            : "type";
      return validationError(field, constraint, issue.message);
    }
    case "invalid_value":
      return validationError(field, "enum", issue.message);
    case "invalid_format":
      return validationError(field, "format", issue.message);
    default:
      return validationError(field, "invalid", issue.message);
  }
}
