// The backends as the dispatcher offers them to the scheduler: health, model readiness and this
// process's breaker make the views; an unchanged state gives the very same array (the scheduler
// encodes each array once), a change a new one.
import { describe, expect, it } from "vitest";
import type { BackendConfig } from "../../src/config/backends.js";
import type { BackendEntry } from "../../src/workers/backends/registry.js";
import { createBackendViews } from "../../src/workers/backend-views.js";

const entry = (id: string, models: string[]): BackendEntry => ({
  config: { id, engine: "nunchaku", capacity: 2, models } as unknown as BackendConfig,
  client: undefined as never,
  healthy: true,
  notReady: new Set(),
});

function setup() {
  const a = entry("a", ["flux/schnell", "flux/dev"]);
  const b = entry("b", ["*"]);
  const open = new Set<string>();
  const views = createBackendViews({ list: () => [a, b] }, { admits: (id) => !open.has(id) });
  return { a, b, open, views };
}

describe("backend views", () => {
  it("describes each backend as the scheduler's scripts read it", () => {
    const { views } = setup();
    expect(views()).toEqual([
      { id: "a", cap: 2, engine: "nunchaku", models: ["flux/schnell", "flux/dev"], ok: true },
      { id: "b", cap: 2, engine: "nunchaku", models: ["*"], ok: true },
    ]);
  });

  it("returns the same array while nothing changed, and a new one for each change", () => {
    const { a, b, open, views } = setup();
    const first = views();
    expect(views()).toBe(first);

    a.notReady = new Set(["flux/dev"]);
    const narrowed = views();
    expect(narrowed).not.toBe(first);
    expect(narrowed[0]).toMatchObject({ id: "a", models: ["flux/schnell"], ok: true });
    expect(views()).toBe(narrowed);

    open.add("b");
    const broken = views();
    expect(broken).not.toBe(narrowed);
    expect(broken[1]).toMatchObject({ id: "b", ok: false });

    b.healthy = false;
    open.delete("b");
    const down = views();
    expect(down).not.toBe(broken);
    expect(down[1]).toMatchObject({ id: "b", ok: false });

    b.healthy = true;
    a.notReady = new Set();
    expect(views()).toEqual(first);
  });

  it("admits every backend without breakers", () => {
    const c = entry("c", ["*"]);
    expect(createBackendViews({ list: () => [c] })()).toEqual([
      { id: "c", cap: 2, engine: "nunchaku", models: ["*"], ok: true },
    ]);
  });
});
