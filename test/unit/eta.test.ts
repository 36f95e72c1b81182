// ETAs and sync admission (core/eta.ts): a queued job at position p, on a route whose capacity c has
// r slots busy, starts after ⌊(p + r) / c⌋ waves of the jobs ahead and completes its own cost later.
import { describe, expect, it } from "vitest";
import {
  maxPositionWithin,
  queuedEtaSeconds,
  retryAfterSeconds,
  runningEtaSeconds,
  startInMs,
  startWaves,
} from "../../src/core/eta.js";

const basis = (capacity: number, running: number, waveMs: number) => ({ capacity, running, waveMs });

describe("start waves", () => {
  it("counts the jobs ahead and the busy slots, a wave per capacity", () => {
    expect(startWaves(0, basis(4, 0, 1_000))).toBe(0);
    expect(startWaves(3, basis(4, 0, 1_000))).toBe(0);
    expect(startWaves(4, basis(4, 0, 1_000))).toBe(1);
    expect(startWaves(0, basis(4, 4, 1_000))).toBe(1);
    expect(startWaves(20, basis(4, 4, 1_000))).toBe(6);
    // more busy than the capacity reads as all of it
    expect(startWaves(0, basis(4, 9, 1_000))).toBe(1);
  });

  it("is undefined without capacity", () => {
    expect(startWaves(0, basis(0, 0, 1_000))).toBeUndefined();
    expect(queuedEtaSeconds(0, basis(0, 0, 1_000), 1_000)).toBeUndefined();
  });
});

describe("ETAs", () => {
  it("is the start of the job plus its own cost", () => {
    expect(startInMs(8, basis(4, 0, 1_500))).toBe(3_000);
    expect(queuedEtaSeconds(8, basis(4, 0, 1_500), 400)).toBe(4);
    expect(queuedEtaSeconds(0, basis(4, 0, 1_500), 400)).toBe(1);
  });

  it("counts down a running job's own cost, at least 1 s", () => {
    expect(runningEtaSeconds(1_000, 4_000)).toBe(3);
    expect(runningEtaSeconds(9_000, 4_000)).toBe(1);
  });
});

describe("sync admission: the highest position that starts within the budget", () => {
  it("admits positions whose start fits the budget, and refuses the next", () => {
    for (const [b, budget] of [
      [basis(4, 0, 3_000), 1_000],
      [basis(4, 4, 3_000), 1_000],
      [basis(4, 2, 400), 1_000],
      [basis(3, 1, 250), 1_000],
      [basis(16, 0, 10), 60_000],
    ] as const) {
      const max = maxPositionWithin(budget, b);
      if (max >= 0) expect(startInMs(max, b)!).toBeLessThanOrEqual(budget);
      expect(startInMs(max + 1, b)!).toBeGreaterThan(budget);
    }
  });

  it("refuses everything without capacity, or while every slot is busy for longer than the budget", () => {
    expect(maxPositionWithin(60_000, basis(0, 0, 1))).toBe(-1);
    expect(maxPositionWithin(1_000, basis(4, 4, 3_000))).toBe(-1);
    expect(maxPositionWithin(1_000, basis(4, 3, 3_000))).toBe(0);
  });

  it("asks a refused client to come back when its start would fit the budget", () => {
    // position 20 behind 4 busy slots of 3 s jobs: 6 waves = 18 s, 17 s more than the 1 s budget
    expect(retryAfterSeconds(20, basis(4, 4, 3_000), 1_000)).toBe(17);
    expect(retryAfterSeconds(0, basis(0, 0, 2_500), 1_000)).toBe(3);
    expect(retryAfterSeconds(0, basis(4, 0, 3_000), 1_000)).toBe(1);
  });
});
