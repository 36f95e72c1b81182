// The bounded LRU map behind the token cache, the verified-file set and the simulator's per-id counts.
import { describe, expect, it } from "vitest";
import { createLru } from "../../src/core/lru.js";

const keysOf = <K, V>(lru: { entries(): IterableIterator<[K, V]> }) => [...lru.entries()].map(([k]) => k);

describe("createLru", () => {
  it("keeps at most its capacity, dropping the least recently set entry first", () => {
    const lru = createLru<string, number>(2);
    lru.set("a", 1);
    lru.set("b", 2);
    lru.set("c", 3);
    expect(lru.size).toBe(2);
    expect(lru.get("a")).toBeUndefined();
    expect([lru.get("b"), lru.get("c")]).toEqual([2, 3]);
  });

  it("counts a get as a use: the entry read survives the next eviction", () => {
    const lru = createLru<string, number>(2);
    lru.set("a", 1);
    lru.set("b", 2);
    expect(lru.get("a")).toBe(1);
    lru.set("c", 3);
    expect(keysOf(lru)).toEqual(["a", "c"]);
  });

  it("counts setting an existing key as a use and replaces its value without growing", () => {
    const lru = createLru<string, number>(2);
    lru.set("a", 1);
    lru.set("b", 2);
    lru.set("a", 10);
    expect(lru.size).toBe(2);
    lru.set("c", 3);
    expect([...lru.entries()]).toEqual([
      ["a", 10],
      ["c", 3],
    ]);
  });

  it("a miss does not change the order", () => {
    const lru = createLru<string, number>(2);
    lru.set("a", 1);
    lru.set("b", 2);
    expect(lru.get("x")).toBeUndefined();
    expect(keysOf(lru)).toEqual(["a", "b"]);
  });

  it("deletes and clears", () => {
    const lru = createLru<string, number>(3);
    lru.set("a", 1);
    lru.set("b", 2);
    expect(lru.delete("a")).toBe(true);
    expect(lru.delete("a")).toBe(false);
    expect(lru.size).toBe(1);
    lru.clear();
    expect(lru.size).toBe(0);
    expect(lru.get("b")).toBeUndefined();
  });

  it("stores nothing with capacity 0", () => {
    const lru = createLru<string, number>(0);
    lru.set("a", 1);
    expect(lru.size).toBe(0);
    expect(lru.get("a")).toBeUndefined();
  });

  it("refuses a capacity that is not a non-negative integer", () => {
    for (const bad of [-1, 1.5, Number.NaN, Number.POSITIVE_INFINITY]) {
      expect(() => createLru(bad), String(bad)).toThrow(RangeError);
    }
  });
});
