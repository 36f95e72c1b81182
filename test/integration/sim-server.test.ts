// The simulated GPU backend over real HTTP on a loopback port: protocol, latency, capacity, faults, aborts.
import sharp from "sharp";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { DEFAULT_SIM_CONFIG } from "../../src/sim/config.js";
import { renderImage } from "../../src/sim/media.js";
import { startSimServer, type SimServer, type SimStats } from "../../src/sim/server.js";

const MODEL = "flux-schnell";

interface InferBody {
  id?: string;
  parameters: Record<string, unknown>;
  inputs: { name: string; datatype: string; shape: number[]; data: unknown[] }[];
}

let seq = 0;
function request(prompt: string, parameters: Record<string, unknown> = {}): InferBody {
  return {
    id: `j_test${++seq}`,
    parameters: {
      modality: "image",
      task: "t2i",
      seed: 42,
      steps: 2,
      width: 512,
      height: 512,
      ...parameters,
    },
    inputs: [{ name: "prompt", datatype: "BYTES", shape: [1], data: [prompt] }],
  };
}

function post(
  sim: SimServer,
  body: unknown,
  opts: { route?: "infer" | "generate_stream"; signal?: AbortSignal; raw?: string } = {},
): Promise<Response> {
  const id = typeof body === "object" && body !== null && "id" in body ? String(body.id) : "none";
  return fetch(`${sim.url}/v2/models/${MODEL}/${opts.route ?? "infer"}`, {
    method: "POST",
    headers: { "content-type": "application/json", "x-request-id": id },
    body: opts.raw ?? JSON.stringify(body),
    ...(opts.signal ? { signal: opts.signal } : {}),
  });
}

async function infer(sim: SimServer, body: InferBody): Promise<{ status: number; json: Wire; ms: number }> {
  const t = performance.now();
  const res = await post(sim, body);
  const json = (await res.json()) as Wire;
  return { status: res.status, json, ms: performance.now() - t };
}

const b64 = (s: string): Buffer => Buffer.from(s, "base64");

interface Tensor {
  name: string;
  datatype: string;
  shape: number[];
  data: string[];
  parameters?: { content_type: string };
}

/** An infer answer, a stream event or an error body. */
interface Wire {
  id?: string;
  model_name?: string;
  outputs?: Tensor[];
  parameters?: {
    gpu_ms?: number;
    seed?: number;
    content_type?: string;
    final?: boolean;
    step?: number;
    steps?: number;
    progress?: number;
  };
  error?: string;
  status?: number;
}

/** The i-th media item (base64) of the first output tensor. */
function media(w: Wire, i = 0): string {
  const d = w.outputs?.[0]?.data[i];
  if (d === undefined) throw new Error(`no output ${i} in ${JSON.stringify(w).slice(0, 200)}`);
  return d;
}

/** Parses an SSE body into the JSON of each `data:` event. */
async function readEvents(res: Response): Promise<Wire[]> {
  const text = await res.text();
  expect(text.endsWith("\n\n")).toBe(true);
  return text
    .split("\n\n")
    .filter((block) => block.length > 0)
    .map((block) => {
      expect(block.startsWith("data: ")).toBe(true);
      return JSON.parse(block.slice("data: ".length)) as Wire;
    });
}

async function waitFor(cond: () => boolean, ms: number): Promise<number> {
  const t = performance.now();
  while (!cond()) {
    if (performance.now() - t > ms) throw new Error(`condition not met within ${ms} ms`);
    await new Promise((r) => setTimeout(r, 5));
  }
  return performance.now() - t;
}

let sim: SimServer;

beforeAll(async () => {
  sim = await startSimServer({ config: { ...DEFAULT_SIM_CONFIG, stepMs: 5 }, port: 0 });
});
afterAll(async () => {
  await sim.close();
});
afterEach(async () => {
  // Every test leaves the shared server idle; a leaked slot fails the test that leaked it.
  await waitFor(() => sim.stats().active === 0, 1000);
  sim.setConfig({ ...DEFAULT_SIM_CONFIG, stepMs: 5 });
  sim.resetStats();
});

describe("sim server: health and metadata", () => {
  it("is live and ready, and serves any model name", async () => {
    expect(sim.url).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
    expect((await fetch(`${sim.url}/v2/health/live`)).status).toBe(200);
    const ready = await fetch(`${sim.url}/v2/health/ready`);
    expect([ready.status, await ready.json()]).toEqual([200, { ready: true }]);
    expect((await fetch(`${sim.url}/v2/models/wan-default/ready`)).status).toBe(200);
    const meta = (await (await fetch(`${sim.url}/v2/models/zimage-turbo`)).json()) as {
      inputs: { name: string }[];
      outputs: { name: string }[];
    };
    expect(meta).toMatchObject({ name: "zimage-turbo", platform: "render-sim", versions: ["1"] });
    expect(meta.inputs.map((i) => i.name)).toContain("prompt");
    expect(meta.outputs[0]).toMatchObject({ name: "output", datatype: "BYTES" });
  });

  it("answers 503 for readiness and calls when down, but stays live", async () => {
    sim.setConfig({ down: true });
    expect((await fetch(`${sim.url}/v2/health/ready`)).status).toBe(503);
    expect((await fetch(`${sim.url}/v2/models/${MODEL}/ready`)).status).toBe(503);
    expect((await fetch(`${sim.url}/v2/health/live`)).status).toBe(200);
    const res = await post(sim, request("down"));
    expect(res.status).toBe(503);
    expect(res.headers.get("retry-after")).toBe("1");
    expect(sim.stats()).toMatchObject({ calls: 1, rejected_busy: 1, active: 0 });
  });

  it("serves the versioned KServe paths too", async () => {
    expect((await fetch(`${sim.url}/v2/models/${MODEL}/versions/1/ready`)).status).toBe(200);
    const res = await fetch(`${sim.url}/v2/models/${MODEL}/versions/1/infer`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify(request("versioned")),
    });
    expect(res.status).toBe(200);
  });

  it("answers 404 for unknown routes", async () => {
    expect((await fetch(`${sim.url}/v3/whatever`)).status).toBe(404);
  });
});

describe("sim server: infer", () => {
  it("answers the KServe v2 shape with a PNG of the requested size", async () => {
    const body = request("a lighthouse at dusk", { width: 1024, height: 576, seed: 7 });
    const res = await post(sim, body);
    expect(res.status).toBe(200);
    expect(res.headers.get("x-request-id")).toBe(body.id);
    const json = (await res.json()) as Wire;
    expect(json).toMatchObject({
      id: body.id,
      model_name: MODEL,
      outputs: [{ name: "output", datatype: "BYTES", shape: [1], parameters: { content_type: "image/png" } }],
      parameters: { seed: 7, content_type: "image/png" },
    });
    expect(json.parameters?.gpu_ms).toEqual(expect.any(Number));
    const png = b64(media(json));
    expect(png.readUInt32BE(16)).toBe(1024);
    expect(png.readUInt32BE(20)).toBe(576);
    // The HTTP answer is exactly what media.ts renders for the same inputs.
    const direct = await renderImage({
      prompt: "a lighthouse at dusk",
      seed: 7,
      width: 1024,
      height: 576,
      format: "png",
    });
    expect(png.equals(Buffer.from(direct))).toBe(true);
  });

  it.each([
    [1024, 1024],
    [512, 512],
    [768, 1024],
    [576, 1024],
    [1024, 768],
    [1024, 576],
  ])("serves the %i×%i format", async (width, height) => {
    const { status, json } = await infer(sim, request("sizes", { width, height }));
    expect(status).toBe(200);
    const meta = await sharp(b64(media(json))).metadata();
    expect([meta.format, meta.width, meta.height]).toEqual(["png", width, height]);
  });

  it("encodes WebP when asked", async () => {
    const { json } = await infer(
      sim,
      request("webp please", { output_format: "webp", width: 768, height: 1024 }),
    );
    expect(json.parameters?.content_type).toBe("image/webp");
    expect(json.outputs?.[0]?.parameters?.content_type).toBe("image/webp");
    const meta = await sharp(b64(media(json))).metadata();
    expect([meta.format, meta.width, meta.height]).toEqual(["webp", 768, 1024]);
  });

  it("makes count different images of the same size", async () => {
    const { json } = await infer(sim, request("four cats", { count: 4 }));
    expect(json.outputs?.[0]?.shape).toEqual([4]);
    const data = json.outputs?.[0]?.data ?? [];
    expect(new Set(data).size).toBe(4);
    for (const d of data) expect((await sharp(b64(d)).metadata()).width).toBe(512);
  });

  it("is deterministic for the same inputs and visibly different for another seed", async () => {
    const a = await infer(sim, request("the same", { seed: 1 }));
    const b = await infer(sim, request("the same", { seed: 1 }));
    const c = await infer(sim, request("the same", { seed: 2 }));
    expect(media(a.json)).toBe(media(b.json));
    const [pa, pc] = await Promise.all(
      [a, c].map((r) =>
        sharp(b64(media(r.json)))
          .raw()
          .toBuffer(),
      ),
    );
    let diff = 0;
    for (let i = 0; i < pa!.length; i++) diff += Math.abs(pa![i]! - pc![i]!);
    expect(diff / pa!.length).toBeGreaterThan(12);
  });

  it("takes steps × step_ms and reports the measured gpu_ms", async () => {
    sim.setConfig({ stepMs: 30 });
    const { status, json, ms } = await infer(sim, request("timed", { steps: 10 }));
    expect(status).toBe(200);
    expect(ms).toBeGreaterThanOrEqual(300);
    expect(ms).toBeLessThan(900);
    expect(json.parameters?.gpu_ms).toBeGreaterThanOrEqual(300);
    expect(json.parameters?.gpu_ms).toBeLessThan(900);
  });

  it("adds [sim:slow=<ms>] to the latency", async () => {
    const { status, ms } = await infer(sim, request("slow one [sim:slow=250]", { steps: 2 }));
    expect(status).toBe(200);
    expect(ms).toBeGreaterThanOrEqual(260);
  });

  it.each([
    ["malformed JSON", undefined, "{not json"],
    ["a missing prompt", { ...request("x"), inputs: [] }, undefined],
    ["a bad size", request("x", { width: 1002 }), undefined],
    ["missing parameters", { id: "j_x", inputs: request("x").inputs }, undefined],
  ])("answers 400 with an error for %s", async (_name, body, raw) => {
    const res = await post(sim, body ?? {}, raw === undefined ? {} : { raw });
    expect(res.status).toBe(400);
    expect(await res.json()).toEqual({ error: expect.any(String) });
    expect(res.headers.get("x-request-id")).toBe(body?.id ?? "none");
    expect(sim.stats()).toMatchObject({ calls: 1, rejected_bad_request: 1, active: 0 });
  });
});

describe("sim server: capacity and faults", () => {
  it("answers 503 with Retry-After at once when at capacity", async () => {
    sim.setConfig({ capacity: 2, stepMs: 40 });
    const running = [infer(sim, request("one", { steps: 5 })), infer(sim, request("two", { steps: 5 }))];
    await waitFor(() => sim.stats().active === 2, 1000);
    const t = performance.now();
    const res = await post(sim, request("three"));
    expect(performance.now() - t).toBeLessThan(150);
    expect(res.status).toBe(503);
    expect(res.headers.get("retry-after")).toBe("1");
    expect((await Promise.all(running)).map((r) => r.status)).toEqual([200, 200]);
    expect(sim.stats()).toMatchObject({ peak_active: 2, rejected_busy: 1, completed: 2, calls: 3 });
  });

  it("fails with 500 after the first step when fail_rate is 1", async () => {
    sim.setConfig({ failRate: 1, stepMs: 50 });
    const { status, json, ms } = await infer(sim, request("doomed", { steps: 20 }));
    expect(status).toBe(500);
    expect(json.error).toEqual(expect.any(String));
    expect(ms).toBeGreaterThanOrEqual(45);
    expect(ms).toBeLessThan(500);
    expect(sim.stats()).toMatchObject({ failed: 1, completed: 0 });
  });

  it.each([
    ["[sim:400]", 400, "rejected_bad_request"],
    ["[sim:500]", 500, "failed"],
    ["[sim:503]", 503, "rejected_busy"],
  ] as const)("obeys the %s trigger", async (trigger, status, counter) => {
    const { status: got } = await infer(sim, request(`a cat ${trigger}`));
    expect(got).toBe(status);
    expect(sim.stats()[counter]).toBe(1);
  });

  it("injects failures at the configured rate with the injected randomness", async () => {
    const draws = [0.1, 0.9, 0.2, 0.8];
    let i = 0;
    const own = await startSimServer({
      config: { ...DEFAULT_SIM_CONFIG, stepMs: 1, failRate: 0.5 },
      random: () => draws[i++ % draws.length]!,
    });
    try {
      const statuses: number[] = [];
      for (let k = 0; k < 4; k++) statuses.push((await infer(own, request(`r${k}`))).status);
      expect(statuses).toEqual([500, 200, 500, 200]);
      expect(own.stats()).toMatchObject({ failed: 2, completed: 2 });
    } finally {
      await own.close();
    }
  });

  it.each([
    ["hang_rate 1", "patient", true],
    ["the [sim:hang] trigger", "patient [sim:hang]", false],
  ])("never answers with %s until the client leaves, then frees the slot", async (_name, prompt, byRate) => {
    if (byRate) sim.setConfig({ hangRate: 1 });
    const ac = new AbortController();
    const pending = post(sim, request(prompt, { steps: 2 }), { signal: ac.signal });
    pending.catch(() => undefined);
    await waitFor(() => sim.stats().hung === 1, 1000);
    await new Promise((r) => setTimeout(r, 150));
    expect(sim.stats()).toMatchObject({ active: 1, hung: 1, completed: 0 });
    ac.abort();
    await expect(pending).rejects.toThrow();
    const freedIn = await waitFor(() => sim.stats().active === 0, 500);
    expect(freedIn).toBeLessThan(100);
    expect(sim.stats()).toMatchObject({ aborted: 1, completed: 0, failed: 0 });
  });

  it("counts hung calls against capacity", async () => {
    sim.setConfig({ capacity: 1 });
    const ac = new AbortController();
    const pending = post(sim, request("[sim:hang]"), { signal: ac.signal });
    pending.catch(() => undefined);
    await waitFor(() => sim.stats().hung === 1, 1000);
    expect((await post(sim, request("next"))).status).toBe(503);
    ac.abort();
  });
});

describe("sim server: client aborts", () => {
  it("stops an infer at once when the client aborts and frees the slot", async () => {
    sim.setConfig({ stepMs: 20 });
    const ac = new AbortController();
    const pending = post(sim, request("abort me", { steps: 100 }), { signal: ac.signal });
    pending.catch(() => undefined);
    await waitFor(() => sim.stats().active === 1, 1000);
    await new Promise((r) => setTimeout(r, 100));
    ac.abort();
    await expect(pending).rejects.toThrow();
    const freedIn = await waitFor(() => sim.stats().active === 0, 1000);
    expect(freedIn).toBeLessThan(100);
    await new Promise((r) => setTimeout(r, 100));
    expect(sim.stats()).toMatchObject({ aborted: 1, completed: 0, active: 0 });
  });

  it("stops a stream when the client cancels it", async () => {
    sim.setConfig({ stepMs: 20 });
    const res = await post(sim, request("stream abort", { steps: 100 }), { route: "generate_stream" });
    const reader = res.body!.getReader();
    const first = await reader.read();
    expect(new TextDecoder().decode(first.value)).toMatch(/^data: /);
    await reader.cancel();
    const freedIn = await waitFor(() => sim.stats().active === 0, 1000);
    expect(freedIn).toBeLessThan(100);
    expect(sim.stats()).toMatchObject({ aborted: 1, completed: 0 });
  });
});

describe("sim server: generate_stream", () => {
  it("sends a progress event per step, previews each quarter and the final answer", async () => {
    sim.setConfig({ stepMs: 10 });
    const body = request("streamed", { steps: 8, previews: true, count: 2 });
    const res = await post(sim, body, { route: "generate_stream" });
    expect(res.status).toBe(200);
    expect(res.headers.get("content-type")).toMatch(/^text\/event-stream/);
    const events = await readEvents(res);
    const steps = events.filter((e) => !e.outputs && !e.error);
    expect(steps.map((e) => e.parameters?.step)).toEqual([1, 2, 3, 4, 5, 6, 7, 8]);
    expect(steps[3]).toEqual({
      id: body.id,
      model_name: MODEL,
      parameters: { step: 4, steps: 8, progress: 0.5 },
    });
    const previews = events.filter((e) => e.outputs?.[0]?.name === "preview");
    expect(previews.map((e) => e.parameters?.step)).toEqual([2, 4, 6]);
    const uri = media(previews[0]!);
    expect(uri).toMatch(/^data:image\/jpeg;base64,/);
    expect((await sharp(b64(uri.slice(uri.indexOf(",") + 1))).metadata()).width).toBe(64);
    // Each preview follows its step's progress event.
    const at = (e: Wire | undefined): number => (e === undefined ? -1 : events.indexOf(e));
    for (const p of previews) expect(at(p)).toBe(at(steps[p.parameters!.step! - 1]) + 1);

    const final = events.at(-1)!;
    expect(final.parameters).toMatchObject({ final: true, seed: 42, content_type: "image/png" });
    const sync = await infer(sim, { ...body, id: "j_again" });
    expect(final.outputs).toEqual(sync.json.outputs);
    expect(Object.keys(final).sort()).toEqual(Object.keys(sync.json).sort());
    expect(sim.stats().completed).toBe(2);
  });

  it("sends no previews unless asked", async () => {
    const events = await readEvents(
      await post(sim, request("quiet", { steps: 8 }), { route: "generate_stream" }),
    );
    expect(events.filter((e) => e.outputs?.[0]?.name === "preview")).toHaveLength(0);
    expect(events).toHaveLength(9);
  });

  it("reports a failure after the stream started as an error event", async () => {
    const res = await post(sim, request("[sim:500]", { steps: 5 }), { route: "generate_stream" });
    expect(res.status).toBe(200);
    const events = await readEvents(res);
    expect(events).toHaveLength(2);
    expect(events[0]?.parameters?.step).toBe(1);
    expect(events[1]).toEqual({ error: expect.any(String), status: 500 });
  });

  it("answers admission errors with a plain status before streaming", async () => {
    expect((await post(sim, request("[sim:400]"), { route: "generate_stream" })).status).toBe(400);
    const busy = await post(sim, request("[sim:503]"), { route: "generate_stream" });
    expect([busy.status, busy.headers.get("retry-after")]).toEqual([503, "1"]);
  });
});

describe("sim server: /sim/config and /sim/stats", () => {
  it("reads and changes the config in snake_case", async () => {
    const put = await fetch(`${sim.url}/sim/config`, {
      method: "PUT",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ step_ms: 7, capacity: 3, fail_rate: 0.1, hang_rate: 0.2 }),
    });
    expect(put.status).toBe(204);
    expect(await (await fetch(`${sim.url}/sim/config`)).json()).toEqual({
      step_ms: 7,
      capacity: 3,
      fail_rate: 0.1,
      hang_rate: 0.2,
      down: false,
    });
    expect(sim.config()).toMatchObject({ stepMs: 7, capacity: 3 });
  });

  it.each(['{"step_ms":-5}', '{"capacity":"many"}', '{"fail_rate":2}', '{"bogus":1}', "not json", "[]"])(
    "refuses %s with 400 and keeps the config",
    async (raw) => {
      const before = sim.config();
      const res = await fetch(`${sim.url}/sim/config`, {
        method: "PUT",
        headers: { "content-type": "application/json" },
        body: raw,
      });
      expect(res.status).toBe(400);
      expect(await res.json()).toEqual({ error: expect.any(String) });
      expect(sim.config()).toEqual(before);
    },
  );

  it("rejects invalid values from code too", () => {
    expect(() => sim.setConfig({ capacity: -1 })).toThrow(RangeError);
    expect(sim.config().capacity).toBe(16);
  });

  it("counts calls per request id so a test can prove a job ran once", async () => {
    const body = request("twice");
    await infer(sim, body);
    await infer(sim, body);
    await infer(sim, request("once"));
    const stats = (await (await fetch(`${sim.url}/sim/stats`)).json()) as SimStats;
    expect(stats).toMatchObject({ calls: 3, completed: 3, active: 0, failed: 0, aborted: 0, hung: 0 });
    expect(stats.calls_by_id[body.id!]).toBe(2);
    expect(Object.keys(stats.calls_by_id)).toHaveLength(2);
    expect((await fetch(`${sim.url}/sim/stats/reset`, { method: "POST" })).status).toBe(204);
    expect(sim.stats()).toMatchObject({ calls: 0, completed: 0, calls_by_id: {} });
  });
});

describe("sim server: lifecycle", () => {
  it("closes idempotently, ending hung calls and leaving no timers, sockets or ffmpeg behind", async () => {
    const kinds = (): Record<string, number> => {
      const out: Record<string, number> = {};
      for (const k of process.getActiveResourcesInfo()) out[k] = (out[k] ?? 0) + 1;
      return out;
    };
    const before = kinds();
    const own = await startSimServer({ config: { ...DEFAULT_SIM_CONFIG, stepMs: 20 } });
    const hung = post(own, request("[sim:hang]"));
    hung.catch(() => undefined);
    const video = post(own, {
      ...request("a long video", { modality: "video", task: "t2v", width: 1280, height: 720, steps: 50 }),
      parameters: {
        modality: "video",
        task: "t2v",
        seed: 1,
        steps: 50,
        width: 1280,
        height: 720,
        duration: 10,
        fps: 30,
      },
    });
    video.catch(() => undefined);
    await waitFor(() => own.stats().active === 2 && own.stats().hung === 1, 2000);
    await waitFor(() => (kinds().ProcessWrap ?? 0) > (before.ProcessWrap ?? 0), 5_000); // ffmpeg runs
    const t = performance.now();
    const first = own.close();
    const second = own.close();
    expect(second).toBe(first);
    await first;
    expect(performance.now() - t).toBeLessThan(2000);
    // Ended calls get a 503 when it can still be written, else the connection is dropped.
    const ended = (p: Promise<Response>): Promise<number | string> =>
      p.then(
        (r) => r.status,
        () => "reset",
      );
    expect([503, "reset"]).toContain(await ended(hung));
    expect([503, "reset"]).toContain(await ended(video));
    expect(own.stats()).toMatchObject({ active: 0, aborted: 2 });
    await expect(fetch(`${own.url}/v2/health/live`)).rejects.toThrow();
    // What close() ended is gone once node has collected it (exit and close events of ffmpeg).
    await waitFor(() => (kinds().ProcessWrap ?? 0) === 0, 5_000);
    const after = kinds();
    expect(after.ProcessWrap ?? 0).toBe(0);
    expect(after.TCPServerWrap ?? 0).toBe(before.TCPServerWrap ?? 0);
    expect(after.Timeout ?? 0).toBeLessThanOrEqual(before.Timeout ?? 0);
  });

  it("refuses to start on a port that is taken", async () => {
    await expect(startSimServer({ config: DEFAULT_SIM_CONFIG, port: sim.port })).rejects.toThrow(
      /EADDRINUSE/,
    );
  });
});
