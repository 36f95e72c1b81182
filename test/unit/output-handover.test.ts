// The in-memory hand-over of a sync attempt's output from the worker role to the api role of one
// process: taken once, bounded in bytes (oldest first) and in age.
import { describe, expect, it } from "vitest";
import { createOutputHandover } from "../../src/core/output-handover.js";

function setup(maxBytes = 10, maxAgeMs = 1_000) {
  const time = { now: 0 };
  const h = createOutputHandover({ clock: () => time.now, maxBytes, maxAgeMs });
  return { h, time };
}
const bytes = (n: number, v = 1) => new Uint8Array(n).fill(v);

describe("output handover", () => {
  it("hands the held bytes over once", () => {
    const { h } = setup();
    const b = bytes(4);
    h.hold("d1", b);
    expect(h.take("d1")).toBe(b);
    expect(h.take("d1")).toBeUndefined();
    expect(h.take("d2")).toBeUndefined();
  });

  it("forgets the oldest bytes beyond its byte bound, and never holds more than the bound", () => {
    const { h } = setup(10);
    h.hold("d1", bytes(4));
    h.hold("d2", bytes(4));
    h.hold("d3", bytes(4));
    expect(h.take("d1")).toBeUndefined();
    expect(h.take("d2")).toHaveLength(4);
    expect(h.take("d3")).toHaveLength(4);
    h.hold("big", bytes(11));
    expect(h.take("big")).toBeUndefined();
  });

  it("forgets bytes held longer than its age bound", () => {
    const { h, time } = setup(100, 1_000);
    h.hold("d1", bytes(4));
    time.now += 500;
    h.hold("d2", bytes(4));
    time.now += 500;
    expect(h.take("d1")).toBeUndefined();
    expect(h.take("d2")).toHaveLength(4);
  });

  it("counts bytes held again under the same digest once", () => {
    const { h } = setup(10);
    h.hold("d1", bytes(6));
    h.hold("d1", bytes(6, 2));
    h.hold("d2", bytes(4));
    expect(h.take("d1")).toEqual(bytes(6, 2));
    expect(h.take("d2")).toHaveLength(4);
  });
});
