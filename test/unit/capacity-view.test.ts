// The API's capacity snapshot: what counts as capacity for ETAs and sync admission (healthy backends
// whose breaker is not open in every worker process that reports one, no more than the slots of the
// live workers serving them), per route and in total, and the costs it estimates.
import { describe, expect, it } from "vitest";
import { createCapacityView } from "../../src/api/capacity.js";
import type { BackendDirectory, BackendState } from "../../src/queues/backend-directory.js";
import type { JobStore, QueuedWork } from "../../src/queues/job-store.js";
import type { WorkerAnnouncement, WorkerRoster } from "../../src/queues/worker-slots.js";

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

const worker = (workerId: string, slots: number, backends: string[]): WorkerAnnouncement => ({
  workerId,
  slots,
  backends,
});

const PRIOR_MS = 5_000;

function view(
  backends: BackendState[],
  o: {
    roster?: WorkerRoster;
    leases?: Record<string, number>;
    rates?: Record<string, number>;
    head?: QueuedWork[] | (() => QueuedWork[]);
    clock?: () => number;
  } = {},
) {
  const directory = { read: async () => backends } as unknown as BackendDirectory;
  const store = {
    workRates: async () => new Map(Object.entries(o.rates ?? {})),
    leases: async () => new Map(Object.entries(o.leases ?? {})),
    head: async (n: number) => (typeof o.head === "function" ? o.head() : (o.head ?? [])).slice(0, n),
  } as unknown as JobStore;
  return createCapacityView({
    directory,
    store,
    workerSlots: { read: async () => o.roster ?? { live: [], announced: false } },
    cost: { msPerUnit: (_model, measured) => measured ?? PRIOR_MS },
    clock: o.clock ?? (() => 0),
    cacheMs: 1_000,
    staleMs: 10_000,
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

describe("capacity capped by the worker slots that serve it", () => {
  it("counts no more slots than the live workers serving the backends have", async () => {
    const snap = await view([backend("a", 16)], {
      roster: { live: [worker("w1", 4, ["a"])], announced: true },
    }).snapshot();
    expect(snap.usableCapacity).toBe(4);
    expect(snap.route("flux/schnell")).toMatchObject({ capacity: 4, served: true });
  });

  it("gives the fair share the fleet's slots, healthy or not, capped by the live worker slots", async () => {
    const backends = [backend("a", 16), backend("b", 4, { healthy: false })];
    const capped = await view(backends, {
      roster: { live: [worker("w1", 4, ["a"]), worker("w2", 2, ["b"])], announced: true },
    }).snapshot();
    // 20 backend slots, 6 worker slots: virtual time runs at 6 slots' pace (16 made aging 4x slower)
    expect(capped.fleetSlots("flux/schnell")).toBe(6);
    expect(capped.usableCapacity).toBe(4);
    expect((await view(backends).snapshot()).fleetSlots("flux/schnell")).toBe(20);
  });

  it("counts the backend slots when the workers have more", async () => {
    const snap = await view([backend("a", 2)], {
      roster: { live: [worker("w1", 4, ["a"]), worker("w2", 4, ["a"])], announced: true },
    }).snapshot();
    expect(snap.route("flux/schnell").capacity).toBe(2);
  });

  it("counts a worker only for the routes whose backends it serves", async () => {
    const snap = await view([backend("a", 8), backend("b", 8, { models: ["flux/dev"] })], {
      roster: { live: [worker("w1", 3, ["a"]), worker("w2", 5, ["b"])], announced: true },
    }).snapshot();
    expect(snap.route("flux/schnell").capacity).toBe(3);
    expect(snap.route("flux/dev").capacity).toBe(5);
    expect(snap.usableCapacity).toBe(8);
  });

  it("has no capacity once every worker that announced is gone", async () => {
    const snap = await view([backend("a", 16)], { roster: { live: [], announced: true } }).snapshot();
    expect(snap.usableCapacity).toBe(0);
    expect(snap.route("flux/schnell")).toMatchObject({ capacity: 0, served: true });
  });

  it("counts the backend slots alone while no worker has announced any", async () => {
    const snap = await view([backend("a", 16)]).snapshot();
    expect(snap.route("flux/schnell").capacity).toBe(16);
  });

  it("reports the busy slots of the route, at most its capacity", async () => {
    const snap = await view([backend("a", 16), backend("b", 4, { models: ["flux/dev"] })], {
      roster: { live: [worker("w1", 4, ["a", "b"])], announced: true },
      leases: { a: 6, b: 1 },
    }).snapshot();
    expect(snap.route("flux/schnell")).toMatchObject({ capacity: 4, running: 4 });
    expect(snap.route("flux/dev")).toMatchObject({ capacity: 4, running: 1 });
    expect(snap.running).toBe(4);
  });
});

describe("costs in the snapshot", () => {
  it("estimates a job's cost from its work units at the model's measured rate, else the prior", async () => {
    const snap = await view([backend("a", 1)], { rates: { "flux/schnell": 80 } }).snapshot();
    expect(snap.costMs("flux/schnell", 2.5)).toBe(200);
    expect(snap.costMs("flux/dev", 2)).toBe(2 * PRIOR_MS);
    expect(snap.averageUnitMs).toBe(80);
  });

  it("makes a wave as long as the mean cost of the jobs at the head of the order", async () => {
    const snap = await view([backend("a", 4)], {
      rates: { "flux/schnell": 100 },
      head: [
        { familyModel: "flux/schnell", work: 10 },
        { familyModel: "flux/schnell", work: 30 },
      ],
    }).snapshot();
    expect(snap.headCostMs).toBe(2_000);
    expect(snap.basis("flux/schnell", undefined, 50)).toEqual({ capacity: 4, running: 0, waveMs: 2_000 });
  });

  it("reads a new snapshot for the sync tier once the held one is older than the cache time", async () => {
    let now = 0;
    let head = [{ familyModel: "flux/schnell", work: 10 }];
    const v = view([backend("a", 4)], { rates: { "flux/schnell": 100 }, head: () => head, clock: () => now });
    expect((await v.fresh()).headCostMs).toBe(1_000);
    head = [];
    now = 1_000;
    expect((await v.fresh()).headCostMs).toBe(1_000); // as old as the cache time: still held
    now = 60_000;
    expect(v.current()?.headCostMs).toBe(1_000); // served while a refresh goes on
    expect((await v.fresh()).headCostMs).toBeUndefined();
  });

  it("makes a wave as long as the job's own cost while nothing is queued", async () => {
    const snap = await view([backend("a", 4)]).snapshot();
    expect(snap.headCostMs).toBeUndefined();
    expect(snap.basis("flux/schnell", undefined, 750).waveMs).toBe(750);
  });
});
