// The slot ledger of a worker process: what counts against its free slots (running attempts,
// reservations of calls in flight, attempts handed to BullMQ in the last second), and which handed
// attempts still wait for a processor. A pinned clock; no Redis.
import { describe, expect, it } from "vitest";
import type { Attempt } from "../../src/queues/scheduler.js";
import { HANDED_COUNTS_MS, createSlotLedger } from "../../src/workers/slot-ledger.js";

const attempt = (id: string, token = `${id}-t`): Attempt => ({
  id,
  token,
  backend: "b1",
  route: "flux/schnell",
  attempt: 1,
  spent: 0,
  modality: "image",
  family: "flux",
  model: "schnell",
  task: "t2i",
  seed: 7,
  request: "{}",
});

const held = (token: string) => ({ token, backend: "b1", abort: () => undefined });

function ledgerAt(concurrency: number) {
  const time = { now: 1_000_000 };
  const ledger = createSlotLedger({ concurrency, clock: () => time.now });
  return { ledger, time };
}

describe("slot ledger", () => {
  it("counts running slots, reservations and attempts handed within the last second against the free slots", () => {
    const { ledger, time } = ledgerAt(5);
    ledger.begin("a");
    expect(ledger.free()).toBe(4);
    ledger.hand([attempt("b"), attempt("c")]);
    expect(ledger.free()).toBe(2);
    expect(ledger.reserveFree()).toBe(2);
    expect(ledger.free()).toBe(0);
    ledger.release(2);
    expect(ledger.free()).toBe(2);
    // A handed attempt no processor took within the second stops counting (its slot was free).
    time.now += HANDED_COUNTS_MS + 1;
    expect(ledger.free()).toBe(4);
    ledger.end();
    expect(ledger.free()).toBe(5);
  });

  it("moves a handed attempt to running when a slot begins it, without counting it twice", () => {
    const { ledger } = ledgerAt(2);
    ledger.hand([attempt("a")]);
    expect(ledger.free()).toBe(1);
    ledger.begin("a");
    expect(ledger.free()).toBe(1);
    expect([...ledger.waiting()]).toEqual([]);
  });

  it("gives two calls in flight disjoint slots: the second one reserves none of the first one's", () => {
    const { ledger } = ledgerAt(3);
    ledger.begin("a");
    ledger.begin("b");
    // Two settles at once: each offers its own slot plus what it reserved of the free ones.
    const first = ledger.reserveFree();
    const second = ledger.reserveFree();
    expect([first, second]).toEqual([1, 0]);
    ledger.release(first);
    expect(ledger.reserveFree()).toBe(1);
  });

  it("never reserves a negative number of slots when more are taken than exist", () => {
    const { ledger } = ledgerAt(1);
    ledger.begin("a");
    ledger.hand([attempt("b")]);
    expect(ledger.free()).toBe(-1);
    expect(ledger.reserveFree()).toBe(0);
    expect(ledger.free()).toBe(-1);
  });

  it("lists the handed attempts not begun here, and drops those older than the age given", () => {
    const { ledger, time } = ledgerAt(4);
    ledger.hand([attempt("a", "ta"), attempt("b", "tb")]);
    time.now += 500;
    ledger.hand([attempt("c", "tc")]);
    // Begun here (the processor holds it), though no BullMQ job began: renewal covers it as held.
    ledger.held.set("b", held("tb"));
    expect([...ledger.waiting(3_000)]).toEqual([
      { id: "a", token: "ta", backend: "b1" },
      { id: "c", token: "tc", backend: "b1" },
    ]);
    time.now += 2_500;
    expect([...ledger.waiting(3_000)]).toEqual([{ id: "c", token: "tc", backend: "b1" }]);
    // Dropped for good: without an age bound, only c is still there.
    expect([...ledger.waiting()].map((h) => h.id)).toEqual(["c"]);
    ledger.drop("c");
    expect([...ledger.waiting()]).toEqual([]);
  });
});
