// Recursive Object.freeze for the configuration tables (catalogue, tiers) that are shared read-only.

/** Freezes `value` and everything reachable from it (objects and arrays); returns `value`. */
export function deepFreeze<T>(value: T): T {
  if (value !== null && typeof value === "object" && !Object.isFrozen(value)) {
    Object.freeze(value);
    for (const v of Object.values(value)) deepFreeze(v);
  }
  return value;
}
