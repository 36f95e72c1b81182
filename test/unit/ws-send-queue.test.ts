// The WebSocket's send queue: intermediates coalesce above the high-water mark (the latest of each
// kind per job waits, and goes out oldest first as the buffer drains), the messages that matter are
// always sent, and a reader that stays over the hard limit is reported once.
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { createSendQueue, type SendSocket } from "../../src/api/ws/send-queue.js";

/** A socket whose buffer the test sets, and whose write callbacks it runs ("the kernel took it"). */
function fakeSocket() {
  const sent: Record<string, unknown>[] = [];
  const callbacks: ((err?: Error) => void)[] = [];
  const socket = {
    bufferedAmount: 0,
    send(data: string, cb: (err?: Error) => void) {
      sent.push(JSON.parse(data) as Record<string, unknown>);
      callbacks.push(cb);
    },
  } satisfies SendSocket;
  /** The buffer drains to `to` bytes and every pending write reports done. */
  const drain = (to: number) => {
    socket.bufferedAmount = to;
    for (const cb of callbacks.splice(0)) cb();
  };
  return { socket, sent, drain };
}

const HIGH = 1000;
const MAX = 5000;

describe("the send queue", () => {
  beforeEach(() => vi.useFakeTimers());
  afterEach(() => vi.useRealTimers());

  function setup() {
    const s = fakeSocket();
    const onSlowReader = vi.fn();
    const q = createSendQueue({
      socket: s.socket,
      highWaterBytes: HIGH,
      maxBufferedBytes: MAX,
      slowReaderMs: 100,
      onSlowReader,
    });
    return { ...s, q, onSlowReader };
  }

  it("sends everything at once while the buffer is below the high-water mark", () => {
    const { q, sent } = setup();
    q.now({ type: "ack" });
    q.latest(1, "progress", { type: "progress", progress: 0.1 });
    q.latest(1, "progress", { type: "progress", progress: 0.2 });
    q.latest(1, "frame", { type: "frame" });
    expect(sent.map((m) => m.type)).toEqual(["ack", "progress", "progress", "frame"]);
    expect(q.stats()).toMatchObject({ coalesced: 0, waiting: 0 });
  });

  it("keeps only the latest intermediate of each kind per stream above the mark, and sends them as it drains", () => {
    const { q, sent, socket, drain } = setup();
    socket.bufferedAmount = HIGH;
    q.latest(1, "progress", { type: "progress", progress: 0.1 });
    q.latest(2, "frame", { type: "frame", n: 1 });
    q.latest(1, "progress", { type: "progress", progress: 0.2 });
    q.latest(1, "progress", { type: "progress", progress: 0.3 });
    q.latest(2, "frame", { type: "frame", n: 2 });
    // what matters is never held back
    q.now({ type: "started" });
    expect(sent).toEqual([{ type: "started" }]);
    // two progress and one frame replaced
    expect(q.stats()).toMatchObject({ coalesced: 3, waiting: 2 });
    drain(0);
    // oldest first: stream 1's progress waited before stream 2's frame
    expect(sent.slice(1)).toEqual([
      { type: "progress", progress: 0.3 },
      { type: "frame", n: 2 },
    ]);
    expect(q.stats().waiting).toBe(0);
  });

  it("stops flushing when the buffer reaches the mark again", () => {
    const { q, sent, socket } = setup();
    socket.bufferedAmount = HIGH;
    q.latest(1, "progress", { type: "progress", n: 1 });
    q.latest(2, "progress", { type: "progress", n: 2 });
    // below the mark, but the first send fills the buffer again
    socket.bufferedAmount = 0;
    const send = socket.send.bind(socket);
    socket.send = (data, cb) => {
      send(data, cb);
      socket.bufferedAmount = HIGH;
    };
    q.flush();
    expect(sent).toEqual([{ type: "progress", n: 1 }]);
    expect(q.stats().waiting).toBe(1);
  });

  it("drops a stream's waiting intermediates when its job ends, and no other stream's", () => {
    const { q, sent, socket, drain } = setup();
    socket.bufferedAmount = HIGH;
    q.latest(1, "frame", { type: "frame", job: 1 });
    q.latest(11, "frame", { type: "frame", job: 11 });
    q.forget(1);
    q.now({ type: "complete", job: 1 });
    drain(0);
    expect(sent).toEqual([
      { type: "complete", job: 1 },
      { type: "frame", job: 11 },
    ]);
    expect(q.stats()).toMatchObject({ coalesced: 1, waiting: 0 });
    expect(q.stats().coalescedBytes).toBe(JSON.stringify({ type: "frame", job: 1 }).length);
  });

  it("reports a reader over the hard limit for the slow-reader time, once", () => {
    const { q, socket, onSlowReader } = setup();
    socket.bufferedAmount = MAX + 1;
    q.now({ type: "error" });
    vi.advanceTimersByTime(99);
    expect(onSlowReader).not.toHaveBeenCalled();
    vi.advanceTimersByTime(1);
    expect(onSlowReader).toHaveBeenCalledTimes(1);
    q.close();
  });

  it("forgives a reader that drains below the limit in time", () => {
    const { q, socket, drain, onSlowReader } = setup();
    socket.bufferedAmount = MAX + 1;
    q.now({ type: "error" });
    vi.advanceTimersByTime(50);
    drain(MAX);
    vi.advanceTimersByTime(1_000);
    expect(onSlowReader).not.toHaveBeenCalled();
    expect(q.stats().peakBufferedBytes).toBe(MAX + 1);
  });

  it("sends nothing once closed", () => {
    const { q, sent } = setup();
    q.close();
    q.now({ type: "ack" });
    q.latest(1, "progress", { type: "progress" });
    expect(sent).toEqual([]);
  });
});
