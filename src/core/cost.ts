// A job's estimated GPU cost (docs/decisions.md "Queue, positions and ETAs"): the work of its request
// in units of its model's reference request, times the milliseconds one unit takes on that model
// (measured by finish.lua, a configured prior until then).
import type { Catalog, ModelEntry } from "./catalog.js";
import type { Modality } from "./formats.js";
import { formatFamilyModel } from "./model-route.js";
import { DEFAULTS, defaultSteps, type GenerationRequest } from "./request-schema.js";

/** Pixels of the reference output: 1024×1024 for images, 1280×720 (720p) for video. */
export const REFERENCE_PIXELS: Readonly<Record<Modality, number>> = Object.freeze({
  image: 1024 * 1024,
  video: 1280 * 720,
});

/** The smallest work a job is given: every job costs something, and the learned rate divides by it. */
export const MIN_WORK = 0.0001;

/** The request one work unit stands for on a model: one output of the reference size. */
export interface CostReference {
  readonly modality: Modality;
  /** The model's default steps (without video `lightning`). */
  readonly steps: number;
  /** Video: the default duration (s). */
  readonly durationS: number;
}

/** ms one work unit takes before any is measured, per modality (DEFAULT_SERVICE_MS, DEFAULT_VIDEO_SERVICE_MS). */
export interface CostPriors {
  readonly image: number;
  readonly video: number;
}

/** The reference request of a catalogue model: its default steps, reference pixels, one output or the default duration. */
export function costReference(entry: ModelEntry): CostReference {
  return { modality: entry.modality, steps: defaultSteps(entry, false), durationS: DEFAULTS.video.duration };
}

/** The fields of a request its work depends on. */
export type WorkShape =
  | Pick<
      Extract<GenerationRequest, { modality: "image" }>,
      "modality" | "steps" | "width" | "height" | "count"
    >
  | Pick<
      Extract<GenerationRequest, { modality: "video" }>,
      "modality" | "steps" | "width" | "height" | "duration"
    >;

/**
 * Work units of a request relative to its model's reference (1 = the reference request): linear in
 * steps, in pixels, and in outputs (image `count`) or frames (video `duration`). Rounded to 4
 * decimals, at least {@link MIN_WORK}.
 */
export function workUnits(req: WorkShape, ref: CostReference): number {
  const steps = req.steps / Math.max(1, ref.steps);
  const pixels = (req.width * req.height) / REFERENCE_PIXELS[req.modality];
  const amount = req.modality === "image" ? req.count : req.duration / ref.durationS;
  return Math.max(MIN_WORK, Math.round(steps * pixels * amount * 10_000) / 10_000);
}

/** Estimated GPU ms of `work` units at `msPerUnit` (at least 1). */
export function estimateCostMs(work: number, msPerUnit: number): number {
  return Math.max(1, Math.round(work * msPerUnit));
}

/** `measured` when it is a usable rate (finite, > 0), else `prior`. */
export function rateOrPrior(measured: number | undefined, prior: number): number {
  return measured !== undefined && Number.isFinite(measured) && measured > 0 ? measured : prior;
}

export interface CostModel {
  /** Work units of a validated request (its model's reference request is 1). */
  workUnits(req: GenerationRequest): number;
  /**
   * ms per work unit of `family/model`: `measured` when usable, else the prior of the model's modality
   * (the image prior for a model the catalogue does not know).
   */
  msPerUnit(familyModel: string, measured: number | undefined): number;
}

/** The cost model of a catalogue: references computed once per model. */
export function createCostModel(catalog: Pick<Catalog, "entries">, priors: CostPriors): CostModel {
  const refs = new Map<string, CostReference>();
  for (const entry of catalog.entries())
    refs.set(formatFamilyModel(entry.family, entry.model), costReference(entry));
  return {
    workUnits(req) {
      const ref = refs.get(formatFamilyModel(req.family, req.model)) ?? {
        modality: req.modality,
        steps: req.modality === "image" ? DEFAULTS.image.steps : DEFAULTS.video.steps,
        durationS: DEFAULTS.video.duration,
      };
      return workUnits(req, ref);
    },
    msPerUnit(familyModel, measured) {
      return rateOrPrior(measured, priors[refs.get(familyModel)?.modality ?? "image"]);
    },
  };
}
