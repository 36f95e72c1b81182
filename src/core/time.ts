// Clock port and RFC 3339 formatting (UTC, milliseconds) used in every timestamp of the API.

/** Milliseconds since the epoch; injected so tests can pin time. */
export type Clock = () => number;

export const systemClock: Clock = () => Date.now();

export const HOUR_MS = 3_600_000;
export const DAY_MS = 86_400_000;

/**
 * Times (ms) that `toISOString` writes with a four-digit year, `YYYY-MM-DDTHH:MM:SS.sssZ`: from the
 * epoch to the end of year 9999. Others are formatted by Date each time.
 */
const FOUR_DIGIT_YEARS_END = 253_402_300_800_000;

// The last second and day formatted: a Date and its ISO string cost about a microsecond, and the
// timestamps of the hot path (a 202's created_at, the admissions journal's day) come in order.
let secondKey = NaN;
let secondText = "";
let dayKey = NaN;
let dayText = "";

/**
 * `2026-11-28T17:30:07.123Z`, as `new Date(ms).toISOString()`.
 * @throws RangeError for a time Date cannot hold (NaN, beyond ±8.64e15).
 */
export function rfc3339(ms: number): string {
  if (!(ms >= 0 && ms < FOUR_DIGIT_YEARS_END)) return new Date(ms).toISOString();
  const whole = Math.floor(ms);
  const second = Math.floor(whole / 1000);
  if (second !== secondKey) {
    secondText = new Date(second * 1000).toISOString().slice(0, 20);
    secondKey = second;
  }
  const milli = whole - second * 1000;
  return `${secondText}${milli < 10 ? "00" : milli < 100 ? "0" : ""}${milli}Z`;
}

/** The UTC day of a time, `2026-11-28`: how usage counts, the ledger and reports name days. */
export function utcDay(ms: number): string {
  if (!(ms >= 0 && ms < FOUR_DIGIT_YEARS_END)) return new Date(ms).toISOString().slice(0, 10);
  const day = Math.floor(ms / DAY_MS);
  if (day !== dayKey) {
    dayText = new Date(day * DAY_MS).toISOString().slice(0, 10);
    dayKey = day;
  }
  return dayText;
}
