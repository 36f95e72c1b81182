// The worker's timers: a periodic task never overlaps itself (a tick while it runs is skipped), a
// failed run is logged and the task goes on; a bounded wait ends at its bound. Fake timers.
import { pino } from "pino";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { every, within } from "../../src/workers/timers.js";

beforeEach(() => {
  vi.useFakeTimers();
});
afterEach(() => {
  vi.useRealTimers();
});

describe("every", () => {
  it("skips the ticks that come while the last run is still going", async () => {
    let finish = () => {};
    const task = vi.fn(() => new Promise<void>((r) => (finish = r)));
    const periodic = every(100, task, pino({ level: "silent" }), "task");
    await vi.advanceTimersByTimeAsync(450);
    expect(task).toHaveBeenCalledTimes(1);
    finish();
    await vi.advanceTimersByTimeAsync(100);
    expect(task).toHaveBeenCalledTimes(2);
    finish();
    periodic.stop();
    await vi.advanceTimersByTimeAsync(1_000);
    expect(task).toHaveBeenCalledTimes(2);
  });

  it("logs a failed run as a warning and runs again at the next tick", async () => {
    const log = pino({ level: "silent" });
    const warn = vi.spyOn(log, "warn");
    const task = vi.fn(() => Promise.reject(new Error("redis away")));
    const periodic = every(100, task, log, "lease reaping");
    await vi.advanceTimersByTimeAsync(200);
    periodic.stop();
    expect(task).toHaveBeenCalledTimes(2);
    expect(warn).toHaveBeenCalledWith({ err: "redis away" }, "lease reaping failed");
  });
});

describe("within", () => {
  it("ends at its bound when the promise does not, and with the promise when it fails first", async () => {
    let ended = false;
    void within(new Promise(() => {}), 1_000).then(() => (ended = true));
    await vi.advanceTimersByTimeAsync(999);
    expect(ended).toBe(false);
    await vi.advanceTimersByTimeAsync(1);
    expect(ended).toBe(true);
    await expect(within(Promise.reject(new Error("gone")), 1_000)).resolves.toBeUndefined();
    await expect(within(undefined, 1_000)).resolves.toBeUndefined();
  });
});
