// rfc3339 and utcDay keep the last second and day they formatted: every time formats exactly as
// Date's toISOString does, in order or not, at the edges of the cached range and beyond it.
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { rfc3339, utcDay } from "../../src/core/time.js";

const iso = (ms: number) => new Date(ms).toISOString();

describe("rfc3339 and utcDay", () => {
  it("format any time as toISOString does", () => {
    fc.assert(
      fc.property(fc.integer({ min: -8.64e15, max: 8.64e15 }), (ms) => {
        expect(rfc3339(ms)).toBe(iso(ms));
        expect(utcDay(ms)).toBe(iso(ms).slice(0, 10));
      }),
      { numRuns: 20_000 },
    );
  });

  it("format runs of nearby times, fractions of a millisecond and the range's edges", () => {
    const times = [0, 0.5, 1, 9, 10, 99, 100, 999, 999.9, 1000, 86_399_999, 86_400_000];
    const now = Date.UTC(2026, 11, 7, 23, 59, 59, 990);
    for (let i = 0; i < 30; i++) times.push(now + i, now + i + 0.25, now - i * 1000);
    times.push(253_402_300_799_999, 253_402_300_800_000, -1, -0.5, 8.64e15, -8.64e15);
    for (const ms of [...times, ...times.reverse()]) {
      expect(rfc3339(ms), String(ms)).toBe(iso(ms));
      expect(utcDay(ms), String(ms)).toBe(iso(ms).slice(0, 10));
    }
  });

  it("throws for what Date cannot hold, as before", () => {
    for (const ms of [NaN, 8.64e15 + 1, Infinity]) {
      expect(() => rfc3339(ms)).toThrow(RangeError);
      expect(() => utcDay(ms)).toThrow(RangeError);
    }
  });
});
