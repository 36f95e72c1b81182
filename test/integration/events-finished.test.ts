// SSE streams of jobs that have already finished, and Last-Event-ID values that are not ids.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  FLUX_SCHNELL_512,
  queueJob,
  readSse,
  startSystem,
  waitFor,
  type TestSystem,
} from "../helpers/system.js";

let sys: TestSystem;
let t: string;
let id: string;
let all: { id?: string; event: string; data: string }[];

beforeAll(async () => {
  sys = await startSystem();
  t = await sys.token("sse-finished");
  id = await queueJob(sys, t, { ...FLUX_SCHNELL_512, prompt: "finished before anyone listens" });
  await waitFor(async () => {
    const j = (await (await sys.call(`/jobs/${id}?redirect=false`, { token: t })).json()) as {
      status: string;
    };
    return j.status === "complete";
  });
  all = await readSse(await sys.call(`/jobs/${id}/events`, { token: t }), () => false, 5_000);
});
afterAll(async () => {
  await sys?.close();
});

const resume = async (lastEventId: string) =>
  // `() => false`: read until the server ends the stream (a stream that never ends times out).
  readSse(
    await sys.call(`/jobs/${id}/events`, { token: t, headers: { "last-event-id": lastEventId } }),
    () => false,
    3_000,
  );

describe("events of a finished job", () => {
  it("replays everything and ends after the terminal event", () => {
    expect(all.at(-1)!.event).toBe("complete");
    expect(all.map((e) => e.event)).toContain("started");
  });

  it("ends at once when resumed after the last event", async () => {
    const started = Date.now();
    expect(await resume(all.at(-1)!.id!)).toEqual([]);
    expect(Date.now() - started).toBeLessThan(2_000);
    await waitFor(async () => sys.listeners() === 0, 2_000);
  });

  it("sends what is left and ends when resumed in the middle", async () => {
    const rest = await resume(all[0]!.id!);
    expect(rest.map((e) => e.id)).toEqual(all.slice(1).map((e) => e.id));
  });

  it("resumes after the stored part of a live position id (N.k)", async () => {
    const rest = await resume(`${all[0]!.id!}.3`);
    expect(rest.map((e) => e.id)).toEqual(all.slice(1).map((e) => e.id));
  });

  it.each(["99999999999999999999999", "9007199254740993", "-1", "abc", "1e3", "0x10", " "])(
    "treats Last-Event-ID %j as no id: the whole history again",
    async (lastEventId) => {
      const again = await resume(lastEventId);
      expect(again.map((e) => e.id)).toEqual(all.map((e) => e.id));
    },
  );
});
