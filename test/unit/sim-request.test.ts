// The simulator's pure parts: request validation, prompt triggers, config patches, counters, LRU cache.
import { describe, expect, it } from "vitest";
import {
  applyConfigPatch,
  DEFAULT_SIM_CONFIG,
  parseConfigPatch,
  toWireConfig,
} from "../../src/sim/config.js";
import { previewSteps } from "../../src/sim/generation.js";
import { createMediaCache } from "../../src/sim/media-cache.js";
import { parseInferRequest, parseTriggers, requestIdOf } from "../../src/sim/request.js";
import { createStatsRecorder } from "../../src/sim/stats.js";

function body(parameters: Record<string, unknown> = {}, inputs?: unknown[]): unknown {
  return {
    id: "j_test",
    parameters: { modality: "image", task: "t2i", seed: 1, steps: 4, width: 512, height: 512, ...parameters },
    inputs: inputs ?? [{ name: "prompt", datatype: "BYTES", shape: [1], data: ["a cat"] }],
  };
}

function errorOf(b: unknown): string {
  const r = parseInferRequest(b, "flux-schnell", "fallback");
  if (r.ok) throw new Error("expected a 400");
  return r.error;
}

describe("sim request validation", () => {
  it("normalises a minimal image request with defaults", () => {
    const r = parseInferRequest(body(), "flux-schnell", "fallback");
    expect(r.ok).toBe(true);
    if (!r.ok) return;
    expect(r.job).toMatchObject({
      id: "j_test",
      model: "flux-schnell",
      modality: "image",
      count: 1,
      format: "png",
      prompt: "a cat",
      previews: false,
      structured: {},
    });
  });

  it("uses the fallback id when the body has none", () => {
    const b = body() as Record<string, unknown>;
    delete b.id;
    const r = parseInferRequest(b, "m", "from-header");
    expect(r.ok && r.job.id).toBe("from-header");
  });

  it("defaults video to 2 s at 8 fps, one output, no image format", () => {
    const r = parseInferRequest(
      body({ modality: "video", task: "t2v", width: 1280, height: 720 }),
      "wan-default",
      "x",
    );
    expect(r.ok && r.job).toMatchObject({ durationS: 2, fps: 8, count: 1, format: undefined });
  });

  it("accepts unknown scalar parameters and structured fields in the request input", () => {
    const r = parseInferRequest(
      body({ cfg: 3.5, sampler: "euler", scheduler: null, tiling: false }, [
        { name: "prompt", datatype: "BYTES", shape: [1], data: ["x"] },
        { name: "negative_prompt", datatype: "BYTES", shape: [1], data: ["blurry"] },
        {
          name: "request",
          datatype: "BYTES",
          shape: [1],
          data: [JSON.stringify({ lora: [{ id: "a", weight: 1 }] })],
        },
      ]),
      "m",
      "x",
    );
    expect(r.ok && r.job.negativePrompt).toBe("blurry");
    expect(r.ok && r.job.structured).toEqual({ lora: [{ id: "a", weight: 1 }] });
  });

  it.each([
    ["no parameters", { id: "x", inputs: [] }, "parameters"],
    ["a missing prompt", body({}, [{ name: "other", datatype: "BYTES", shape: [1], data: ["x"] }]), "prompt"],
    [
      "an empty prompt",
      body({}, [{ name: "prompt", datatype: "BYTES", shape: [1], data: ["  "] }]),
      "prompt",
    ],
    ["a non-BYTES prompt", body({}, [{ name: "prompt", datatype: "FP32", shape: [1], data: [1] }]), "BYTES"],
    ["a width off the grid", body({ width: 100 }), "width"],
    ["a width too large", body({ width: 4096 }), "width"],
    ["a fractional height", body({ height: 512.5 }), "height"],
    ["a count of 5", body({ count: 5 }), "count"],
    ["zero steps", body({ steps: 0 }), "steps"],
    ["a negative seed", body({ seed: -1 }), "seed"],
    ["an unknown modality", body({ modality: "audio" }), "modality"],
    ["a bad output format", body({ output_format: "gif" }), "output_format"],
    ["mp4 for an image", body({ output_format: "mp4" }), "output_format"],
    ["png for a video", body({ modality: "video", task: "t2v", output_format: "png" }), "output_format"],
    ["count 2 for a video", body({ modality: "video", task: "t2v", count: 2 }), "count"],
    ["a duration of 60 s", body({ modality: "video", task: "t2v", duration: 60 }), "duration"],
    ["an object parameter", body({ lora: { id: "a" } }), "lora"],
    [
      "a request input that is not JSON",
      body({}, [
        { name: "prompt", datatype: "BYTES", shape: [1], data: ["x"] },
        { name: "request", datatype: "BYTES", shape: [1], data: ["{nope"] },
      ]),
      "request",
    ],
    ["i2i without an image", body({ task: "i2i" }), "image"],
    [
      "edit without a mask",
      body({ task: "edit" }, [
        { name: "prompt", datatype: "BYTES", shape: [1], data: ["x"] },
        { name: "request", datatype: "BYTES", shape: [1], data: [JSON.stringify({ image: "sha256-aa" })] },
      ]),
      "mask",
    ],
  ])("refuses %s", (_name, b, mentions) => {
    expect(errorOf(b)).toContain(mentions);
  });

  it("takes the request id from the body, else from the header", () => {
    expect(requestIdOf({ id: "a" }, "b")).toBe("a");
    expect(requestIdOf({ id: 5 }, "b")).toBe("b");
    expect(requestIdOf(undefined, undefined)).toBeUndefined();
  });
});

describe("sim prompt triggers", () => {
  it("finds every trigger and sums slow delays", () => {
    expect(parseTriggers("a cat [sim:500] [sim:slow=120][sim:slow=30] [sim:hang]")).toEqual({
      badRequest: false,
      fail: true,
      busy: false,
      hang: true,
      slowMs: 150,
    });
    expect(parseTriggers("[sim:400][sim:503]")).toMatchObject({ badRequest: true, busy: true });
  });

  it("takes a preview width within 8-1024 pixels", () => {
    expect(parseTriggers("frames [sim:preview=320]").previewWidth).toBe(320);
    expect(parseTriggers("[sim:preview=1]").previewWidth).toBe(8);
    expect(parseTriggers("[sim:preview=99999]").previewWidth).toBe(1024);
    expect(parseTriggers("no frames asked").previewWidth).toBeUndefined();
  });

  it("ignores look-alikes", () => {
    expect(parseTriggers("sim:500 [sim:404] [SIM:500] [sim:slow]")).toEqual({
      badRequest: false,
      fail: false,
      busy: false,
      hang: false,
      slowMs: 0,
    });
  });
});

describe("sim config", () => {
  it("defaults to API.md §5", () => {
    expect(toWireConfig(DEFAULT_SIM_CONFIG)).toEqual({
      step_ms: 20,
      capacity: 16,
      fail_rate: 0,
      hang_rate: 0,
      down: false,
    });
  });

  it("maps a snake_case patch", () => {
    expect(parseConfigPatch({ step_ms: 5, fail_rate: 0.25, down: true })).toEqual({
      ok: true,
      patch: { stepMs: 5, failRate: 0.25, down: true },
    });
  });

  it.each([
    { step_ms: -1 },
    { capacity: 1.5 },
    { fail_rate: 1.01 },
    { hang_rate: "0.1" },
    { down: 1 },
    { extra: 1 },
    [],
  ])("refuses %j", (patch) => {
    expect(parseConfigPatch(patch).ok).toBe(false);
  });

  it("applies patches immutably and refuses out-of-range values", () => {
    const next = applyConfigPatch(DEFAULT_SIM_CONFIG, { capacity: 2 });
    expect(next.capacity).toBe(2);
    expect(DEFAULT_SIM_CONFIG.capacity).toBe(16);
    expect(Object.isFrozen(next)).toBe(true);
    expect(() => applyConfigPatch(DEFAULT_SIM_CONFIG, { failRate: 2 })).toThrow(RangeError);
    expect(() => applyConfigPatch(DEFAULT_SIM_CONFIG, { stepMs: Number.NaN })).toThrow(RangeError);
  });
});

describe("sim stats", () => {
  it("counts calls per id and forgets the least recently called ids beyond the limit", () => {
    const s = createStatsRecorder(3);
    for (const id of ["a", "b", "a", "c", "d"]) s.call(id);
    s.call(undefined);
    expect(s.snapshot().calls).toBe(6);
    expect(s.snapshot().calls_by_id).toEqual({ a: 2, c: 1, d: 1 });
  });

  it("tracks the peak and keeps live state on reset", () => {
    const s = createStatsRecorder();
    s.enter();
    s.enter();
    s.leave();
    s.count("failed");
    expect(s.snapshot()).toMatchObject({ active: 1, peak_active: 2, failed: 1 });
    s.reset();
    expect(s.snapshot()).toMatchObject({ active: 1, peak_active: 1, failed: 0, calls: 0, calls_by_id: {} });
  });
});

describe("sim media cache", () => {
  it("evicts the least recently used entry by count and by bytes", () => {
    const c = createMediaCache({ maxEntries: 2, maxBytes: 10 });
    c.set("a", new Uint8Array(3));
    c.set("b", new Uint8Array(3));
    c.get("a");
    c.set("c", new Uint8Array(3));
    expect([c.get("a") !== undefined, c.get("b") !== undefined, c.get("c") !== undefined]).toEqual([
      true,
      false,
      true,
    ]);
    c.set("d", new Uint8Array(8));
    expect(c.size()).toEqual({ entries: 1, bytes: 8 });
    c.set("huge", new Uint8Array(11));
    expect(c.get("huge")).toBeUndefined();
  });

  it("counts a replaced entry's bytes once and drops it when the replacement is too large", () => {
    const c = createMediaCache({ maxEntries: 4, maxBytes: 10 });
    c.set("a", new Uint8Array(4));
    c.set("b", new Uint8Array(4));
    c.set("a", new Uint8Array(2));
    expect(c.size()).toEqual({ entries: 2, bytes: 6 });
    c.set("c", new Uint8Array(4));
    c.set("a", new Uint8Array(11));
    expect(c.get("a")).toBeUndefined();
    expect(c.size()).toEqual({ entries: 2, bytes: 8 });
    c.set("d", new Uint8Array(5));
    expect([c.get("b"), c.get("c") !== undefined, c.get("d") !== undefined]).toEqual([undefined, true, true]);
    expect(c.size()).toEqual({ entries: 2, bytes: 9 });
    c.clear();
    expect(c.size()).toEqual({ entries: 0, bytes: 0 });
  });
});

describe("sim previews", () => {
  it("come about every quarter of the steps, never on the last one", () => {
    expect([...previewSteps(8)]).toEqual([2, 4, 6]);
    expect([...previewSteps(30)]).toEqual([8, 15, 23]);
    expect([...previewSteps(2)]).toEqual([1]);
    expect([...previewSteps(1)]).toEqual([]);
  });
});
