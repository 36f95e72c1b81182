// Backpressure on the WebSocket: a client that stops reading while its jobs stream large preview
// frames cannot grow what the server buffers for it past WS_MAX_BUFFERED_BYTES (progress and frames
// are coalesced; acks and completes all arrive once it reads again), and one that stays over the
// limit is closed as a slow reader (4408).
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createKeys } from "../../src/queues/keys.js";
import { FLUX_SCHNELL_512, startSystem, waitFor, type TestSystem } from "../helpers/system.js";
import { closedWithin, openWs, wsUrl, type WsClient } from "../helpers/ws-client.js";

const HIGH_WATER = 64 * 1024;
const MAX_BUFFERED = 256 * 1024;
/**
 * Jobs per test: 3 frames of 30-60 KB each, about 5-10 MB in all, more than loopback's socket buffers
 * (about 4 MB here) hold before the server's own buffer starts to fill.
 */
const JOBS = 80;

let sys: TestSystem;
let token: string;
const clients: WsClient[] = [];

beforeAll(async () => {
  sys = await startSystem({
    env: {
      WS_HIGH_WATER_BYTES: String(HIGH_WATER),
      WS_MAX_BUFFERED_BYTES: String(MAX_BUFFERED),
      WS_SLOW_READER_MS: "1000",
      WS_MAX_JOBS_PER_CONNECTION: "1000",
      WS_MESSAGES_PER_S: "100000",
    },
  });
  token = await sys.token("slow-reader", { tier: "enterprise" });
});
afterAll(async () => {
  await Promise.all(clients.map((c) => c.close()));
  await sys?.close();
});

/** Finished jobs of the system (its own Redis prefix). */
const finished = () => sys.redis.client.zcard(createKeys(sys.redis.prefix).done);

/** Sends `JOBS` generates whose previews are 400 px wide JPEGs (`[sim:preview=440] [sim:slow=240]`). */
function sendFrameJobs(c: WsClient, tag: string): string[] {
  const { modality, family, model, task, format } = FLUX_SCHNELL_512;
  const ids = Array.from({ length: JOBS }, (_, i) => `${tag}-${i}`);
  for (const id of ids) {
    c.send({
      type: "generate",
      id,
      modality,
      family,
      model,
      task,
      request: { format, prompt: `frames ${id} [sim:preview=440] [sim:slow=240]`, steps: 12 },
    });
  }
  return ids;
}

describe("a client that stops reading", () => {
  it("holds the server's buffer for it under the bound; every ack and complete arrives later", async () => {
    const before = await finished();
    const c = await openWs(wsUrl(sys.url), { token });
    clients.push(c);
    c.ws.pause();
    const ids = sendFrameJobs(c, "f");
    await waitFor(
      async () => (await finished()) >= before + JOBS && sys.wsStats().jobs_in_flight === 0,
      120_000,
    );

    const stats = sys.wsStats();
    // the bound held, with the high-water mark passed: the socket's kernel buffers were full, and
    // what came on was coalesced — more than the bound itself, so without coalescing it would not hold
    expect(stats.peak_buffered_bytes).toBeLessThanOrEqual(MAX_BUFFERED);
    expect(stats.peak_buffered_bytes).toBeGreaterThanOrEqual(HIGH_WATER);
    expect(stats.coalesced_bytes).toBeGreaterThan(MAX_BUFFERED);
    expect(stats.slow_reader_closes).toBe(0);

    c.ws.resume();
    await Promise.all(ids.map((id) => c.next((m) => m.id === id && m.type === "complete", 60_000)));
    for (const id of ids) {
      const msgs = c.messages.filter((m) => m.id === id);
      expect(msgs[0]!.type).toBe("ack");
      expect(msgs.filter((m) => m.type === "ack")).toHaveLength(1);
      expect(msgs.filter((m) => m.type === "complete")).toHaveLength(1);
      expect(msgs.at(-1)!.type).toBe("complete");
      expect(msgs.every((m) => m.job_id === msgs[0]!.job_id)).toBe(true);
    }
    // frames were dropped, not all sent
    expect(c.messages.some((m) => m.type === "frame")).toBe(true);
    await c.close();
    await waitFor(async () => sys.listeners() === 0 && sys.wsStats().connections === 0);
  }, 180_000);

  it("is closed as a slow reader (4408) when it stays over the limit", async () => {
    const c = await openWs(wsUrl(sys.url), { token });
    clients.push(c);
    c.ws.pause();
    const coalescedBefore = sys.wsStats().coalesced;
    sendFrameJobs(c, "s");
    // the kernel's buffers are full once the server starts coalescing for this connection
    await waitFor(async () => sys.wsStats().coalesced > coalescedBefore, 120_000);
    // then messages the server must answer (errors are never dropped) push its buffer over the limit
    const id = "x".repeat(128);
    for (let i = 0; i < 2_000; i++) c.send({ type: "unknown-type", id });
    await waitFor(async () => sys.wsStats().slow_reader_closes === 1, 30_000);
    c.ws.resume();
    const closed = await closedWithin(c);
    expect(closed.code).toBe(4408);
    expect(closed.reason).toMatch(/slow reader/);
    await waitFor(async () => sys.listeners() === 0 && sys.wsStats().connections === 0);
  }, 180_000);
});
