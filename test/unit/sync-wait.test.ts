// The sync route's wait: however many times the job's events wake it, it holds one abort listener
// on the request's signal, and none once it returns.
import { getEventListeners } from "node:events";
import { describe, expect, it } from "vitest";
import type { ApiDeps } from "../../src/api/deps.js";
import { waitForEnd, wantsEarlyHints } from "../../src/api/routes/generate.js";

function fakeDeps(wakeUpsBeforeDone: number) {
  const listeners = new Set<() => void>();
  let reads = 0;
  const deps = {
    clock: () => Date.now(),
    hub: {
      on: (_id: string, l: () => void) => {
        listeners.add(l);
        return () => listeners.delete(l);
      },
    },
    store: {
      read: async () => {
        reads += 1;
        const status = reads > wakeUpsBeforeDone ? "complete" : "running";
        return { job: { id: "j_x", status }, position: -1 };
      },
    },
  } as unknown as ApiDeps;
  return { deps, notify: () => [...listeners].forEach((l) => l()), reads: () => reads };
}

describe("waitForEnd", () => {
  it("keeps one abort listener across many wake-ups and removes it at the end", async () => {
    const { deps, notify, reads } = fakeDeps(30);
    const controller = new AbortController();
    const waiting = waitForEnd(deps, "j_x", 60_000, controller.signal);
    let most = 0;
    while (reads() <= 30) {
      await new Promise((r) => setImmediate(r));
      most = Math.max(most, getEventListeners(controller.signal, "abort").length);
      notify();
    }
    const job = await waiting;
    expect(job?.status).toBe("complete");
    expect(most).toBe(1);
    expect(getEventListeners(controller.signal, "abort")).toHaveLength(0);
  });

  it("returns as soon as the client goes away", async () => {
    const { deps } = fakeDeps(Number.POSITIVE_INFINITY);
    const controller = new AbortController();
    const waiting = waitForEnd(deps, "j_x", 60_000, controller.signal);
    // It is waiting: it listens for the abort.
    while (getEventListeners(controller.signal, "abort").length === 0)
      await new Promise((r) => setTimeout(r, 1));
    const started = Date.now();
    controller.abort();
    expect(await waiting).toBeUndefined();
    expect(Date.now() - started).toBeLessThan(500);
    expect(getEventListeners(controller.signal, "abort")).toHaveLength(0);
  });
});

describe("wantsEarlyHints (Prefer: early-hints)", () => {
  it.each([
    ["early-hints", true],
    ["wait=10, early-hints", true],
    ["Early-Hints ,wait=5", true],
    ["early-hints; x=1", true],
    [undefined, false],
    ["", false],
    ["wait=10", false],
    ["early-hints-please", false],
    ["respond-async; early-hints", false],
  ] as const)("%s → %s", (prefer, expected) => {
    expect(wantsEarlyHints(prefer)).toBe(expected);
  });
});
