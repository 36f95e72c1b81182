// The analytics worker's rollup refreshes (pipeline/rollup-refresh.ts), against a sink of our own
// port whose refreshes the test ends by hand: one at a time; a batch that asks while one runs waits
// for the next, which starts only when the running one has ended and takes every key asked for
// meanwhile; a failed refresh fails the batches it was for, and no other.
import { describe, expect, it } from "vitest";
import type { AnalyticsSink, RollupKey } from "../../src/core/analytics-event.js";
import { coalescedRefresh } from "../../src/pipeline/rollup-refresh.js";

const key = (customer_id: string): RollupKey => ({ hour_ms: 0, customer_id, model: "m" });

/** A sink whose refreshes wait until the test ends them, in order. */
function handSink() {
  const calls: { customers: string[]; end: (err?: Error) => void }[] = [];
  const sink: Pick<AnalyticsSink, "refreshRollup"> = {
    refreshRollup(keys) {
      return new Promise<void>((resolve, reject) => {
        calls.push({
          customers: keys.map((k) => k.customer_id),
          end: (err) => (err === undefined ? resolve() : reject(err)),
        });
      });
    },
  };
  return { sink, calls };
}

const settle = () => new Promise((r) => setImmediate(r));
const state = (p: Promise<void>) => {
  const s = { v: "pending" };
  p.then(
    () => (s.v = "done"),
    (e: Error) => (s.v = e.message),
  );
  return s;
};

describe("rollup refreshes", () => {
  it("run one at a time; those asked for meanwhile share the next, started after the running one", async () => {
    const { sink, calls } = handSink();
    const refresh = coalescedRefresh(sink);
    const a = state(refresh([key("a")]));
    await settle();
    expect(calls.map((c) => c.customers)).toEqual([["a"]]);
    const b = state(refresh([key("b"), key("a")]));
    const c = state(refresh([key("c"), key("b")]));
    await settle();
    // nothing starts while the first runs: it may have read before b's and c's inserts ended
    expect(calls.length).toBe(1);
    calls[0]!.end();
    await settle();
    expect([a.v, b.v, c.v]).toEqual(["done", "pending", "pending"]);
    expect(calls.map((x) => x.customers)).toEqual([["a"], ["b", "a", "c"]]);
    calls[1]!.end();
    await settle();
    expect([b.v, c.v]).toEqual(["done", "done"]);
    // idle again: the next request starts at once
    const d = state(refresh([key("d")]));
    await settle();
    expect(calls.length).toBe(3);
    calls[2]!.end();
    await settle();
    expect(d.v).toBe("done");
    expect(await refresh([])).toBeUndefined();
  });

  it("fail the batches of a failed refresh only", async () => {
    const { sink, calls } = handSink();
    const refresh = coalescedRefresh(sink);
    const a = state(refresh([key("a")]));
    await settle();
    const b = state(refresh([key("b")]));
    calls[0]!.end(new Error("ClickHouse away"));
    await settle();
    expect([a.v, b.v]).toEqual(["ClickHouse away", "pending"]);
    calls[1]!.end();
    await settle();
    expect(b.v).toBe("done");
  });
});
