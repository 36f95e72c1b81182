// Server-Sent Events: progress from the backend, previews, resume with Last-Event-ID, heartbeats,
// a removed job, and disconnects that free their listeners.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  FLUX_SCHNELL_512,
  queueJob,
  readSse,
  setSimDown,
  startSystem,
  waitFor,
  type TestSystem,
} from "../helpers/system.js";
import { createKeys } from "../../src/queues/keys.js";

let sys: TestSystem;
let t: string;
beforeAll(async () => {
  sys = await startSystem({ env: { SSE_HEARTBEAT_MS: "200" } });
  t = await sys.token("sse");
});
afterAll(async () => {
  await sys?.close();
});

const submit = (body: Record<string, unknown>) => queueJob(sys, t, { ...FLUX_SCHNELL_512, ...body });

describe("job events", () => {
  it("streams real progress and preview frames from a streaming backend", async () => {
    sys.sim.setConfig({ stepMs: 60 });
    const id = await submit({ prompt: "slow enough to watch", steps: 12 });
    const mid = await waitFor(async () => {
      const j = (await (await sys.call(`/jobs/${id}`, { token: t })).json()) as {
        status: string;
        progress: number;
      };
      return j.status === "running" && j.progress > 0 && j.progress < 1 ? j : undefined;
    });
    expect(mid.progress).toBeGreaterThan(0);
    const events = await readSse(
      await sys.call(`/jobs/${id}/events`, { token: t }),
      (e) => e.event === "complete",
    );
    sys.sim.setConfig({ stepMs: 2 });
    const progress = events
      .filter((e) => e.event === "progress")
      .map((e) => JSON.parse(e.data) as { progress: number; step: number; steps: number });
    expect(progress.length).toBeGreaterThan(1);
    expect(progress.every((p) => p.steps === 12 && p.step >= 1 && p.step <= 12)).toBe(true);
    const values = progress.map((p) => p.progress);
    expect([...values].sort((a, b) => a - b)).toEqual(values);
    const previews = events
      .filter((e) => e.event === "preview")
      .map((e) => (JSON.parse(e.data) as { frame: string }).frame);
    expect(previews.length).toBeGreaterThan(0);
    expect(previews[0]).toMatch(/^data:image\/(jpeg|png|webp);base64,/);
  });

  it("asks the backend for no previews for a sync job, and records no progress for a short one", async () => {
    // Its caller waits for the answer: previews cost it time, and so would progress writes for a job
    // done within one progress interval (200 ms; a longer sync job records progress: sync-wait.test.ts).
    sys.sim.setConfig({ stepMs: 5 });
    const res = await sys.call("/image/flux/schnell/t2i?format=512", {
      token: t,
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ prompt: "a sync job", steps: 12 }),
    });
    sys.sim.setConfig({ stepMs: 2 });
    expect(res.status).toBe(200);
    await res.arrayBuffer();
    const id = res.headers.get("x-job-id") ?? "";
    const events = await readSse(
      await sys.call(`/jobs/${id}/events`, { token: t }),
      (e) => e.event === "complete",
    );
    expect(events.filter((e) => e.event === "preview")).toEqual([]);
    // progress at most once per 200 ms from 200 ms into the attempt on, and not its last step: none
    // for a run shorter than that (a loaded machine may stretch it)
    const job = (await (await sys.call(`/jobs/${id}?redirect=false`, { token: t })).json()) as {
      started_at: string;
      completed_at: string;
    };
    const ranMs = Date.parse(job.completed_at) - Date.parse(job.started_at);
    const progress = events.filter((e) => e.event === "progress").length;
    expect(progress).toBeLessThanOrEqual(Math.floor(ranMs / 200));
    expect(events.at(-1)?.event).toBe("complete");
  });

  it("resumes after Last-Event-ID without loss or repeats", async () => {
    const id = await submit({ prompt: "resume me" });
    const all = await readSse(
      await sys.call(`/jobs/${id}/events`, { token: t }),
      (e) => e.event === "complete",
    );
    const stored = all.filter((e) => /^\d+$/.test(e.id ?? ""));
    expect(stored.length).toBeGreaterThanOrEqual(3);
    const cut = stored[1]!;
    const rest = await readSse(
      await sys.call(`/jobs/${id}/events`, { token: t, headers: { "last-event-id": cut.id! } }),
      (e) => e.event === "complete",
    );
    expect(rest.map((e) => e.id)).toEqual(stored.slice(2).map((e) => e.id));
    expect(rest.map((e) => e.data)).toEqual(stored.slice(2).map((e) => e.data));
  });

  it("sends heartbeats while nothing happens, and live position updates while queued", async () => {
    await setSimDown(sys, true); // nothing runs: the jobs stay queued
    const first = await submit({ prompt: "waits a while" });
    const second = await submit({ prompt: "waits behind" });
    const res = await sys.call(`/jobs/${second}/events`, { token: t });
    const reader = res.body!.getReader();
    let text = "";
    const deadline = Date.now() + 3_000;
    while (!text.includes(": heartbeat") && Date.now() < deadline) {
      const { value } = await reader.read();
      text += new TextDecoder().decode(value);
    }
    expect(text).toContain(": heartbeat");
    // the position is live state: sent with the id of the last stored event (none yet: 0) and a counter
    expect(text).toMatch(/event: position\ndata: \{[^}]*"position":1[^}]*\}\nid: 0\.1\n/);
    await sys.call(`/jobs/${first}`, { method: "DELETE", token: t });
    const moved = /event: position\ndata: \{[^}]*"position":0[^}]*\}\nid: 0\.2\n/;
    while (!moved.test(text) && Date.now() < deadline + 3_000) {
      const { value } = await reader.read();
      text += new TextDecoder().decode(value);
    }
    expect(text).toMatch(moved);
    await reader.cancel();
    sys.sim.setConfig({ down: false });
    await sys.call(`/jobs/${second}`, { method: "DELETE", token: t });
  });

  it("ends the stream with job_not_found when the job is removed", async () => {
    await setSimDown(sys, true);
    const id = await submit({ prompt: "to be removed" });
    const res = await sys.call(`/jobs/${id}/events`, { token: t });
    // Removed once the stream has begun (its first event, the live position, has arrived).
    let removed: Promise<number> | undefined;
    const events = await readSse(
      res,
      () => {
        removed ??= sys.redis.client.del(
          createKeys(sys.redis.prefix).job(id),
          createKeys(sys.redis.prefix).events(id),
        );
        return false;
      },
      5_000,
    );
    expect(await removed).toBeGreaterThanOrEqual(1);
    expect(events.at(-1)!.event).toBe("error");
    expect(JSON.parse(events.at(-1)!.data)).toMatchObject({ code: "job_not_found" });
    sys.sim.setConfig({ down: false });
    await sys.redis.client.zrem(createKeys(sys.redis.prefix).queue, id);
  });

  it("frees the stream's listeners when the client disconnects", async () => {
    await setSimDown(sys, true);
    const id = await submit({ prompt: "watch and leave" });
    const before = sys.listeners();
    const controller = new AbortController();
    const res = await sys.call(`/jobs/${id}/events`, { token: t, signal: controller.signal });
    await res.body!.getReader().read();
    expect(sys.listeners()).toBe(before + 1);
    controller.abort();
    await waitFor(async () => sys.listeners() === before, 5_000);
    expect((await sys.call("/health")).status).toBe(200);
    sys.sim.setConfig({ down: false });
    await sys.call(`/jobs/${id}`, { method: "DELETE", token: t });
  });
});
