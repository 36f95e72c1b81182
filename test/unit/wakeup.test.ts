// The wake-up latch behind SSE streams and sync waits: no signal is lost, whenever it comes.
import { describe, expect, it } from "vitest";
import { createWakeup } from "../../src/api/wakeup.js";

/** Whether `p` has settled after the pending microtasks and timers of this turn ran. */
async function settled(p: Promise<void>): Promise<boolean> {
  let done = false;
  void p.then(() => {
    done = true;
  });
  await new Promise((r) => setImmediate(r));
  return done;
}

describe("createWakeup", () => {
  it("ends a wait in progress at the signal", async () => {
    const w = createWakeup();
    const waiting = w.wait();
    expect(await settled(waiting)).toBe(false);
    w.signal();
    expect(await settled(waiting)).toBe(true);
  });

  it("keeps a signal that came while nobody waited for the next wait, once", async () => {
    const w = createWakeup();
    w.signal();
    w.signal();
    expect(await settled(w.wait())).toBe(true);
    const next = w.wait(60_000);
    expect(await settled(next)).toBe(false);
    w.signal(); // ends it, and its timer with it
    await next;
  });

  it("ends a wait at its timeout", async () => {
    const w = createWakeup();
    const started = Date.now();
    await w.wait(20);
    expect(Date.now() - started).toBeGreaterThanOrEqual(15);
  });

  it("keeps a signal that comes after a wait ended by its timeout", async () => {
    const w = createWakeup();
    await w.wait(5);
    w.signal();
    expect(await settled(w.wait(60_000))).toBe(true);
  });
});
