// The analytics worker's batches (pipeline/analytics.ts createAnalyticsBatcher), against a sink of
// our own port that records what it is given: rows go out in batches of at most N, or after the
// flush delay; a row resolves only once its insert and the refresh of its rollup row succeeded; a
// store that is down fails the whole batch, one that answers but refuses a row gets the batch split
// until that row fails alone.
import { describe, expect, it } from "vitest";
import type { AnalyticsSink, InferenceEvent } from "../../src/core/analytics-event.js";
import { createAnalyticsBatcher } from "../../src/pipeline/analytics.js";

const HOUR = 3_600_000;
const H0 = Date.UTC(2026, 11, 7, 10);
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
    async refreshRollup() {},
    async refreshHours() {
      return 0;
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

  it("refresh the rollup rows of every row of a batch after its insert, stored now or before", async () => {
    const steps: string[] = [];
    const sink: AnalyticsSink = {
      async insert(rows) {
        steps.push(`insert ${rows.length}`);
        return 1; // the others were stored by an earlier try
      },
      async refreshRollup(keys) {
        steps.push(`refresh ${JSON.stringify(keys.map((k) => [k.hour_ms - H0, k.customer_id, k.model]))}`);
      },
      async refreshHours() {
        return 0;
      },
    };
    const at = (id: string, ms: number, customer_id: string, model: string) =>
      ({
        event_id: id,
        customer_id,
        model,
        completed_at: Math.floor(ms / 1000),
        completed_ms: ms,
      }) as InferenceEvent;
    const b = createAnalyticsBatcher({ sink, maxRows: 4, flushMs: 1_000 });
    await Promise.all([
      b.add(at("a", H0 + 5, "acme", "m1")),
      b.add(at("b", H0 + HOUR - 1, "acme", "m1")),
      b.add(at("c", H0 + HOUR, "acme", "m1")),
      b.add(at("d", H0 + 10, "zed", "m2")),
    ]);
    expect(steps).toEqual([
      "insert 4",
      `refresh ${JSON.stringify([
        [0, "acme", "m1"],
        [HOUR, "acme", "m1"],
        [0, "zed", "m2"],
      ])}`,
    ]);
  });

  it("fail every row of a batch whose rollup refresh fails, though its insert succeeded", async () => {
    const sink: AnalyticsSink = {
      async insert(rows) {
        return rows.length;
      },
      async refreshRollup() {
        throw new Error("refresh refused");
      },
      async refreshHours() {
        return 0;
      },
    };
    const b = createAnalyticsBatcher({ sink, maxRows: 2, flushMs: 1_000 });
    const results = ["a", "b"].map((id) => outcome(b.add({ ...row(id), completed_at: 1 })));
    expect(await Promise.all(results)).toEqual(["refresh refused", "refresh refused"]);
  });
});
