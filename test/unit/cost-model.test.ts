// The cost model (core/cost.ts): work units of a validated request relative to its model's reference
// request (steps, pixels, outputs, duration), and the estimated GPU cost from the model's measured ms
// per unit or, before any measurement, the configured prior of its modality.
import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { buildCatalog } from "../../src/core/catalog.js";
import {
  MIN_WORK,
  costReference,
  createCostModel,
  estimateCostMs,
  rateOrPrior,
  workUnits,
} from "../../src/core/cost.js";
import { parseQueueRequest } from "../../src/core/request-schema.js";

const catalog = buildCatalog(
  JSON.parse(readFileSync(new URL("../../config/catalog.json", import.meta.url), "utf8")) as unknown,
);
const priors = { image: 5_000, video: 60_000 };
const cost = createCostModel(catalog, priors);
const parse = (body: Record<string, unknown>) =>
  parseQueueRequest(body, { catalog, minTtlS: 60, maxTtlS: 86_400 });
const schnell = (extra: Record<string, unknown> = {}) =>
  parse({ modality: "image", family: "flux", model: "schnell", task: "t2i", prompt: "p", ...extra });
const wan = (extra: Record<string, unknown> = {}) =>
  parse({ modality: "video", family: "wan", model: "default", task: "t2v", prompt: "p", ...extra });

describe("work units", () => {
  it("are 1 for a request with the model's defaults (its reference request)", () => {
    expect(cost.workUnits(schnell())).toBe(1);
    expect(cost.workUnits(wan())).toBe(1);
    expect(costReference(catalog.find("flux", "schnell")!)).toEqual({
      modality: "image",
      steps: 4,
      durationS: 2,
    });
  });

  it("scale with the steps, relative to the model's default steps", () => {
    expect(cost.workUnits(schnell({ steps: 8 }))).toBe(2);
    expect(cost.workUnits(schnell({ steps: 150 }))).toBe(37.5);
    expect(cost.workUnits(wan({ steps: 14 }))).toBe(0.5);
    // flux/dev's default is 25 steps: the same 150 steps are 6 of its units
    const dev = parse({
      modality: "image",
      family: "flux",
      model: "dev",
      task: "t2i",
      prompt: "p",
      steps: 150,
    });
    expect(cost.workUnits(dev)).toBe(6);
  });

  it("scale with the pixels, relative to 1024×1024 for images and 1280×720 for video", () => {
    expect(cost.workUnits(schnell({ format: "512" }))).toBe(0.25);
    expect(cost.workUnits(schnell({ format: "portrait" }))).toBe(0.75);
    expect(cost.workUnits(wan({ format: "480p" }))).toBeCloseTo((832 * 480) / (1280 * 720), 4);
    expect(cost.workUnits(wan({ format: "720p-portrait" }))).toBe(1);
  });

  it("scale with the number of images and with the video's duration", () => {
    expect(cost.workUnits(schnell({ count: 3 }))).toBe(3);
    expect(cost.workUnits(wan({ duration: 4 }))).toBe(2);
    expect(cost.workUnits(wan({ duration: 0.5 }))).toBe(0.25);
  });

  it("multiply: steps, pixels and count together", () => {
    expect(cost.workUnits(schnell({ steps: 8, format: "512", count: 4 }))).toBe(2 * 0.25 * 4);
    expect(cost.workUnits(wan({ steps: 42, duration: 1, format: "square" }))).toBeCloseTo(
      1.5 * 0.5 * ((640 * 640) / (1280 * 720)),
      4,
    );
  });

  it("never fall below the smallest work", () => {
    const ref = { modality: "image" as const, steps: 150, durationS: 2 };
    expect(workUnits({ modality: "image", steps: 1, width: 8, height: 8, count: 1 }, ref)).toBe(MIN_WORK);
  });
});

describe("estimated cost", () => {
  it("uses the modality's prior before any measurement: video costs more than an image", () => {
    const image = estimateCostMs(cost.workUnits(schnell()), cost.msPerUnit("flux/schnell", undefined));
    const video = estimateCostMs(cost.workUnits(wan()), cost.msPerUnit("wan/default", undefined));
    expect(image).toBe(priors.image);
    expect(video).toBe(priors.video);
    expect(video).toBeGreaterThan(image);
    // a model the catalogue does not know gets the image prior
    expect(cost.msPerUnit("nope/nope", undefined)).toBe(priors.image);
  });

  it("uses the learned ms per unit once measured, scaled by the job's work", () => {
    const rate = cost.msPerUnit("flux/schnell", 80);
    expect(rate).toBe(80);
    expect(estimateCostMs(cost.workUnits(schnell({ steps: 150 })), rate)).toBe(3_000);
    expect(estimateCostMs(cost.workUnits(schnell({ format: "512" })), rate)).toBe(20);
  });

  it("ignores a measurement that is no rate (zero, negative, not a number)", () => {
    for (const bad of [0, -3, Number.NaN, Number.POSITIVE_INFINITY]) expect(rateOrPrior(bad, 7)).toBe(7);
    expect(estimateCostMs(MIN_WORK, 1)).toBe(1);
  });
});
