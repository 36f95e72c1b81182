// The API's capacity snapshot: what counts as capacity for ETAs and sync admission (healthy backends
// whose breaker is not open in every worker process that reports one), per route and in total.
import { describe, expect, it } from "vitest";
import { createCapacityView } from "../../src/api/capacity.js";
import type { BackendDirectory, BackendState } from "../../src/queues/backend-directory.js";
import type { JobStore } from "../../src/queues/job-store.js";

function backend(id: string, capacity: number, extra: Partial<BackendState> = {}): BackendState {
  return {
    id,
    engine: "nunchaku",
    capacity,
    models: ["flux/schnell"],
    streaming: false,
    healthy: true,
    breakers: {},
    updatedAt: 0,
    ...extra,
  };
}

function view(backends: BackendState[]) {
  const directory = { read: async () => backends } as unknown as BackendDirectory;
  const store = { serviceTimes: async () => new Map<string, number>() } as unknown as JobStore;
  return createCapacityView({
    directory,
    store,
    clock: () => 0,
    cacheMs: 1_000,
    staleMs: 10_000,
    defaultServiceMs: 5_000,
  });
}

describe("capacity snapshot", () => {
  it("leaves out unhealthy backends and those whose breaker is open in every reporting worker", async () => {
    const snap = await view([
      backend("ok", 4),
      backend("down", 8, { healthy: false }),
      backend("open-everywhere", 16, { breakers: { w1: "open", w2: "open" } }),
      backend("open-in-one", 2, { breakers: { w1: "open", w2: "closed" } }),
      backend("half-open", 1, { breakers: { w1: "halfOpen" } }),
    ]).snapshot();
    expect(snap.usableCapacity).toBe(4 + 2 + 1);
    expect(snap.route("flux/schnell")).toMatchObject({ capacity: 7, served: true });
  });

  it("has no usable capacity when every breaker is open, though the model is still served", async () => {
    const snap = await view([backend("a", 4, { breakers: { w1: "open" } })]).snapshot();
    expect(snap.usableCapacity).toBe(0);
    expect(snap.route("flux/schnell")).toMatchObject({ capacity: 0, served: true });
  });
});
