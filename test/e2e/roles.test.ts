// The roles as separate processes against one Redis: `start --roles sim`, `start --roles worker` (no
// BACKENDS_FILE: it finds the simulator through DATA_DIR/run/sim.url) and `start --roles api`, driven
// over HTTP only. Also the video path (H.264 MP4 of the default 720p format) through the same processes.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { readSse } from "../helpers/system.js";
import {
  E2eHarness,
  call,
  compareEventIds,
  mp4VideoSampleEntries,
  pngDimensions,
  problemOf,
  token,
  until,
  waitForModel,
  type Gateway,
} from "../helpers/processes.js";

let h: E2eHarness;
let sim: Gateway;
let worker: Gateway;
let api: Gateway;
let alice: string;
let bob: string;

beforeAll(async () => {
  h = new E2eHarness();
  sim = await h.start("sim", { wait: "sim", env: { SIM_STEP_MS: "20" } });
  worker = await h.start("worker", { wait: "none" });
  await h.waitForWorker(worker.proc);
  api = await h.start("api");
  alice = await token("alice");
  bob = await token("bob");
  await waitForModel(api.url, alice, "flux/dev");
});
afterAll(async () => {
  await h?.cleanup();
});

type Job = Record<string, unknown> & { id: string; status: string };

async function jobJson(id: string, bearer = alice): Promise<Job> {
  const r = await call(api.url, `/jobs/${id}?redirect=false`, { token: bearer });
  expect(r.status).toBe(200);
  return (await r.json()) as Job;
}

describe("separate sim, worker and api processes", () => {
  it("runs only the roles asked for: the worker found the simulator through DATA_DIR/run/sim.url", async () => {
    expect(sim.url).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
    // The sim process serves KServe v2 and nothing of the API; the api process has no simulator.
    expect((await fetch(`${sim.url}/v2/health/ready`)).status).toBe(200);
    expect((await fetch(`${sim.url}/health`)).status).toBe(404);
    const ready = await call(api.url, "/ready", { token: await token("ops", { admin: true }) });
    expect(ready.status).toBe(200);
    const body = (await ready.json()) as { backends: { id: string; healthy: boolean }[] };
    expect(body.backends.length).toBeGreaterThan(0);
    expect(body.backends.every((b) => b.id.startsWith("sim-") && b.healthy)).toBe(true);
  });

  it("async submit: SSE events in order with monotonic ids, then 303 to a PNG of the format's size", async () => {
    const res = await call(api.url, "/queue", {
      method: "POST",
      token: alice,
      body: {
        modality: "image",
        family: "flux",
        model: "dev",
        task: "t2i",
        format: "portrait",
        steps: 20,
        prompt: "a red fox in the snow",
      },
    });
    expect(res.status).toBe(202);
    const created = (await res.json()) as Job & { events_url: string; position: number };
    expect(created.id).toMatch(/^j_[A-Za-z0-9]{20,}$/);
    expect(created.status).toBe("queued");
    expect(Number.isInteger(created.position)).toBe(true);
    expect(res.headers.get("location")).toBe(`${api.url}/jobs/${created.id}`);
    expect(created.events_url).toBe(`${api.url}/jobs/${created.id}/events`);

    const sse = await call(api.url, `/jobs/${created.id}/events`, { token: alice });
    expect(sse.status).toBe(200);
    expect(sse.headers.get("content-type")).toMatch(/^text\/event-stream/);
    const events = await readSse(sse, (e) => e.event === "complete" || e.event === "error", 60_000);
    const names = events.map((e) => e.event);
    // position…, started, progress…, complete
    expect(names.join(" ")).toMatch(/^(position )*started (progress |preview )*complete$/);
    expect(names.filter((n) => n === "progress").length).toBeGreaterThan(0);
    const ids = events.map((e) => e.id!);
    for (let i = 1; i < ids.length; i++) expect(compareEventIds(ids[i - 1]!, ids[i]!)).toBeLessThan(0);

    const data = events.map((e) => JSON.parse(e.data) as Record<string, unknown>);
    const started = data[names.indexOf("started")]!;
    expect(started.attempt).toBe(1);
    expect(String(started.backend)).toMatch(/^sim-/);
    const progress = data.filter((_, i) => names[i] === "progress");
    for (const p of progress) {
      expect(p.steps).toBe(20);
      expect(p.progress).toBeGreaterThan(0);
      expect(p.progress).toBeLessThanOrEqual(1);
    }
    const steps = progress.map((p) => Number(p.step));
    expect([...steps].sort((a, b) => a - b)).toEqual(steps);
    const complete = data.at(-1)!;
    expect(String(complete.output)).toMatch(
      new RegExp(`^${api.url}/objects/sha256-[0-9a-f]{64}\\?exp=\\d+&sig=[A-Za-z0-9_-]+$`),
    );
    expect(typeof complete.gpu_ms).toBe("number");

    const job = await call(api.url, `/jobs/${created.id}`, { token: alice });
    expect(job.status).toBe(303);
    const location = job.headers.get("location")!;
    expect(location).toBe(complete.output);
    const body = (await job.json()) as Job;
    expect(body.status).toBe("complete");
    expect(body.output).toBe(location);

    // The output URL is signed: no token needed.
    const img = await fetch(location);
    expect(img.status).toBe(200);
    expect(img.headers.get("content-type")).toBe("image/png");
    expect(pngDimensions(new Uint8Array(await img.arrayBuffer()))).toEqual({ width: 768, height: 1024 });
  });

  it("sync route: 200 with the bytes and the documented headers", async () => {
    const res = await call(api.url, "/image/flux/schnell/t2i?format=landscape", {
      method: "POST",
      token: alice,
      body: { prompt: "a lighthouse at dawn", seed: 7 },
    });
    const bytes = new Uint8Array(await res.arrayBuffer());
    expect(res.status, Buffer.from(bytes).toString()).toBe(200);
    expect(res.headers.get("content-type")).toBe("image/png");
    expect(pngDimensions(bytes)).toEqual({ width: 1024, height: 768 });
    const hdr = (n: string) => res.headers.get(n);
    expect(hdr("x-job-id")).toMatch(/^j_[A-Za-z0-9]{20,}$/);
    expect(hdr("x-seed")).toBe("7");
    expect(hdr("x-weyl-seed")).toBe("7");
    expect(hdr("x-duration-ms")).toMatch(/^\d+$/);
    expect(hdr("x-weyl-duration-ms")).toBe(hdr("x-duration-ms"));
    expect(hdr("x-gpu-ms")).toMatch(/^\d+$/);
    expect(Number(hdr("x-gpu-ms"))).toBeGreaterThan(0);
    expect(hdr("x-request-id")).toMatch(/^req_[A-Za-z0-9]{20,}$/);
    expect(hdr("x-weyl-request-id")).toBe(hdr("x-request-id"));
    const location = hdr("content-location")!;
    expect(location).toMatch(new RegExp(`^${api.url}/objects/sha256-[0-9a-f]{64}\\?`));
    const again = await fetch(location);
    expect(again.status).toBe(200);
    expect(Buffer.from(await again.arrayBuffer()).equals(Buffer.from(bytes))).toBe(true);

    const job = await jobJson(hdr("x-job-id")!);
    expect(job.status).toBe("complete");
    expect(job.seed).toBe(7);
    expect(job.format).toBe("landscape");
  });

  it("another customer's job is 404 on GET, DELETE and events, exactly like a missing one", async () => {
    // Slow enough to still be running while bob tries.
    const res = await call(api.url, "/queue", {
      method: "POST",
      token: alice,
      body: {
        modality: "image",
        family: "flux",
        model: "schnell",
        task: "t2i",
        prompt: "mine [sim:slow=20000]",
      },
    });
    expect(res.status).toBe(202);
    const { id } = (await res.json()) as Job;
    const missing = "j_0000000000000000000000";
    for (const [method, path] of [
      ["GET", `/jobs/${id}`],
      ["DELETE", `/jobs/${id}`],
      ["GET", `/jobs/${id}/events`],
      ["POST", `/jobs/${id}/cancel`],
    ] as const) {
      const theirs = await problemOf(await call(api.url, path, { method, token: bob }), 404, "not_found");
      const none = await problemOf(
        await call(api.url, path.replace(id, missing), { method, token: bob }),
        404,
        "not_found",
      );
      expect(theirs.detail.replace(id, "ID")).toBe(none.detail.replace(missing, "ID"));
      expect(theirs.details).toEqual(none.details);
    }
    // Bob's DELETE did nothing: alice's job goes on, and alice can cancel it across processes.
    const mine = await jobJson(id);
    expect(["queued", "running"]).toContain(mine.status);
    const cancel = await call(api.url, `/jobs/${id}`, { method: "DELETE", token: alice });
    expect([202, 204]).toContain(cancel.status);
    await until("the job is cancelled", async () => (await jobJson(id)).status === "cancelled", 15_000);
  });
});

describe("video through the separate processes", () => {
  it("POST /video/wan/default/t2v answers an H.264 MP4 of 1280x720 (the default 720p format)", async () => {
    await waitForModel(api.url, alice, "wan/default");
    const res = await call(api.url, "/video/wan/default/t2v", {
      method: "POST",
      token: alice,
      body: { prompt: "waves rolling onto a beach at sunset", steps: 8 },
    });
    const bytes = new Uint8Array(await res.arrayBuffer());
    expect(res.status, Buffer.from(bytes.subarray(0, 500)).toString()).toBe(200);
    expect(res.headers.get("content-type")).toBe("video/mp4");
    expect(res.headers.get("content-location")).toMatch(new RegExp(`^${api.url}/objects/sha256-`));
    const mp4 = mp4VideoSampleEntries(bytes);
    expect(["isom", "mp42", "mp41", "iso5", "avc1"]).toContain(mp4.ftyp);
    expect(mp4.entries).toEqual([{ format: "avc1", width: 1280, height: 720 }]);

    const job = await jobJson(res.headers.get("x-job-id")!);
    expect(job.format).toBe("720p");
    expect(job.modality).toBe("video");
  });
});
