// The analytics worker's batches (pipeline/analytics.ts createAnalyticsBatcher), against a sink of
// our own port that records what it is given: rows go out in batches of at most N, or after the
// flush delay; a row resolves only once its insert succeeded; a store that is down fails the whole
// batch, one that answers but refuses a row gets the batch split until that row fails alone.
import { describe, expect, it } from "vitest";
import type { AnalyticsSink, InferenceEvent } from "../../src/core/analytics-event.js";
import { createAnalyticsBatcher } from "../../src/pipeline/analytics.js";

const row = (id: string) => ({ event_id: id }) as InferenceEvent;

function recordingSink(refuse: (ids: readonly string[]) => boolean = () => false) {
  const calls: string[][] = [];
  const sink: AnalyticsSink = {
    async insert(rows) {
      const ids = rows.map((r) => r.event_id);
      calls.push(ids);
      if (refuse(ids)) throw new Error("refused");
      return rows.length;
    },
  };
  return { sink, calls };
}

const outcome = (p: Promise<void>) =>
  p.then(
    () => "stored",
    (err: Error) => err.message,
  );

describe("analytics batches", () => {
  it("go out full at N rows, and a partial one after the flush delay", async () => {
    const { sink, calls } = recordingSink();
    const b = createAnalyticsBatcher({ sink, maxRows: 3, flushMs: 30 });
    const results = ["a", "b", "c", "d"].map((id) => outcome(b.add(row(id))));
    await Promise.all(results.slice(0, 3));
    expect(calls).toEqual([["a", "b", "c"]]);
    expect(await results[3]).toBe("stored");
    expect(calls).toEqual([["a", "b", "c"], ["d"]]);
  });

  it("fail every row of a batch when the store is down (each is retried by its job)", async () => {
    const { sink, calls } = recordingSink(() => true);
    const b = createAnalyticsBatcher({ sink, maxRows: 4, flushMs: 1_000, reachable: async () => false });
    const results = ["a", "b", "c", "d"].map((id) => outcome(b.add(row(id))));
    expect(await Promise.all(results)).toEqual(["refused", "refused", "refused", "refused"]);
    expect(calls).toEqual([["a", "b", "c", "d"]]);
  });

  it("split a batch the answering store refuses until the row it will not take fails alone", async () => {
    const { sink, calls } = recordingSink((ids) => ids.includes("poison"));
    const b = createAnalyticsBatcher({ sink, maxRows: 5, flushMs: 1_000, reachable: async () => true });
    const ids = ["a", "b", "poison", "d", "e"];
    const results = await Promise.all(ids.map((id) => outcome(b.add(row(id)))));
    expect(results).toEqual(["stored", "stored", "refused", "stored", "stored"]);
    // every row but the poison one was written exactly once
    const written = calls.filter((c) => !c.includes("poison")).flat();
    expect(written.sort()).toEqual(["a", "b", "d", "e"]);
  });

  it("write what is collected at once on flush", async () => {
    const { sink, calls } = recordingSink();
    const b = createAnalyticsBatcher({ sink, maxRows: 100, flushMs: 60_000 });
    const p = b.add(row("x"));
    await b.flush();
    await p;
    expect(calls).toEqual([["x"]]);
  });
});
