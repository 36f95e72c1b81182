// The sync route's wait (api/sync-wait.ts): however many times the job's events wake it, it holds one
// abort listener on the request's signal, and none once it returns; it reads the job only when it may
// have ended, and answers from the record a settle of this process hands it without a read.
import { getEventListeners } from "node:events";
import { describe, expect, it } from "vitest";
import type { ApiDeps } from "../../src/api/deps.js";
import type { JobWake } from "../../src/api/event-hub.js";
import type { JobRecord } from "../../src/core/job.js";
import { wantsEarlyHints } from "../../src/api/routes/generate.js";
import { watchJob } from "../../src/api/sync-wait.js";

type Wake = (wake?: JobWake, job?: JobRecord) => void;

/** Deps whose job reads `running` for the first `runningReads` reads, then `complete`. */
function fakeDeps(runningReads: number) {
  const listeners = new Set<Wake>();
  let reads = 0;
  const deps = {
    clock: () => Date.now(),
    hub: {
      on: (_id: string, l: Wake) => {
        listeners.add(l);
        return () => listeners.delete(l);
      },
    },
    store: {
      read: async () => {
        reads += 1;
        const status = reads > runningReads ? "complete" : "running";
        return { job: { id: "j_x", status }, position: -1 };
      },
    },
  } as unknown as ApiDeps;
  return {
    deps,
    notify: (wake?: JobWake, job?: JobRecord) => [...listeners].forEach((l) => l(wake, job)),
    reads: () => reads,
    listeners: () => listeners.size,
  };
}

const tick = () => new Promise((r) => setImmediate(r));

describe("the sync wait", () => {
  it("keeps one abort listener across many wake-ups and removes it at the end", async () => {
    const { deps, notify, reads } = fakeDeps(30);
    const controller = new AbortController();
    const watch = watchJob(deps, "j_x");
    const waiting = watch.until(60_000, controller.signal);
    let most = 0;
    while (reads() <= 30) {
      await tick();
      most = Math.max(most, getEventListeners(controller.signal, "abort").length);
      notify("any");
    }
    const job = await waiting;
    watch.close();
    expect(job?.status).toBe("complete");
    expect(most).toBe(1);
    expect(getEventListeners(controller.signal, "abort")).toHaveLength(0);
  });

  it("returns as soon as the client goes away", async () => {
    const { deps } = fakeDeps(Number.POSITIVE_INFINITY);
    const controller = new AbortController();
    const watch = watchJob(deps, "j_x");
    const waiting = watch.until(60_000, controller.signal);
    // It is waiting: it listens for the abort.
    while (getEventListeners(controller.signal, "abort").length === 0)
      await new Promise((r) => setTimeout(r, 1));
    const started = Date.now();
    controller.abort();
    expect(await waiting).toBeUndefined();
    expect(Date.now() - started).toBeLessThan(500);
    expect(getEventListeners(controller.signal, "abort")).toHaveLength(0);
    watch.close();
  });

  it("reads the job only on wake-ups that may end it, never on its other events", async () => {
    const { deps, notify, reads } = fakeDeps(1);
    const watch = watchJob(deps, "j_x");
    const waiting = watch.until(60_000, new AbortController().signal);
    for (let i = 0; i < 20; i++) {
      notify("event");
      await tick();
    }
    expect(reads()).toBe(0);
    // a bare wake-up (an older gateway's message) reads: the job is still running
    notify("any");
    while (reads() < 1) await tick();
    notify("ended");
    expect((await waiting)?.status).toBe("complete");
    expect(reads()).toBe(2);
    watch.close();
  });

  it("keeps a wake-up that came before the wait began (during the admission)", async () => {
    const { deps, notify, reads } = fakeDeps(0);
    const watch = watchJob(deps, "j_x");
    notify("event");
    notify("ended");
    notify("event");
    const job = await watch.until(60_000, new AbortController().signal);
    expect(job?.status).toBe("complete");
    expect(reads()).toBe(1);
    watch.close();
  });

  it("answers from the record a settle handed over, without reading the job", async () => {
    const { deps, notify, reads, listeners } = fakeDeps(0);
    const watch = watchJob(deps, "j_x");
    const waiting = watch.until(60_000, new AbortController().signal);
    await tick();
    notify("ended", { id: "j_x", status: "complete", output: "sha256-ab" } as JobRecord);
    expect(await waiting).toMatchObject({ status: "complete", output: "sha256-ab" });
    expect(reads()).toBe(0);
    expect(listeners()).toBe(1);
    watch.close();
    expect(listeners()).toBe(0);
  });

  it("polls the job when nothing wakes it (a lost message), however many other events come", async () => {
    const { deps, notify, reads } = fakeDeps(2);
    // a poll every 30 ms; events every 5 ms must not put it off
    const watch = watchJob(deps, "j_x", 30);
    const events = setInterval(() => notify("event"), 5);
    try {
      const started = Date.now();
      const job = await watch.until(10_000, new AbortController().signal);
      expect(job?.status).toBe("complete");
      expect(reads()).toBe(3);
      // three polls of 30 ms, not a wait for the budget
      expect(Date.now() - started).toBeLessThan(2_000);
    } finally {
      clearInterval(events);
      watch.close();
    }
  });

  it("answers from a settle's record that came while a read was in flight", async () => {
    // found by review: the record was looked at only before a read, so a read answering "running"
    // followed by the end of the budget returned nothing (a 202 for a complete job)
    const listeners = new Set<Wake>();
    const record = { id: "j_x", status: "complete", output: "sha256-ab" } as JobRecord;
    const deps = {
      clock: () => Date.now(),
      hub: { on: (_id: string, l: Wake) => (listeners.add(l), () => listeners.delete(l)) },
      store: {
        read: async () => {
          setTimeout(() => [...listeners].forEach((l) => l("ended", record)), 10);
          await new Promise((r) => setTimeout(r, 40));
          return { job: { id: "j_x", status: "running" }, position: -1 };
        },
      },
    } as unknown as ApiDeps;
    const watch = watchJob(deps, "j_x");
    [...listeners].forEach((l) => l("any"));
    const job = await watch.until(30, new AbortController().signal);
    watch.close();
    expect(job).toEqual(record);
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
