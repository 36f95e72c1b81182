// Clock port and RFC 3339 formatting (UTC, milliseconds) used in every timestamp of the API.

/** Milliseconds since the epoch; injected so tests can pin time. */
export type Clock = () => number;

export const systemClock: Clock = () => Date.now();

/** `2026-11-28T17:30:07.123Z` */
export function rfc3339(ms: number): string {
  return new Date(ms).toISOString();
}

export const HOUR_MS = 3_600_000;
export const DAY_MS = 86_400_000;

/** The UTC day of a time, `2026-11-28`: how usage counts, the ledger and reports name days. */
export function utcDay(ms: number): string {
  return new Date(ms).toISOString().slice(0, 10);
}
