// The catalogue's vocabulary and global tables: tasks, engines, statuses, samplers, schedulers, the
// family default engines and the global range of every numeric generation parameter. Data only.
import type { Modality } from "../formats.js";

export type { Modality } from "../formats.js";

/** Generation tasks of the original API. */
export type Task = "t2i" | "i2i" | "edit" | "t2v" | "i2v";
/** Every inference engine (the original API's `BackendId`), in the order the original spec lists them. */
export const ENGINES = ["nunchaku", "torch", "tensorrt"] as const;
/** An inference engine. */
export type Engine = (typeof ENGINES)[number];
/** Lifecycle of a catalogue model; only `active` and `preview` models accept jobs. */
export type ModelStatus = "active" | "preview" | "coming_soon" | "deprecated";

/** Every task, in the order the original spec lists them. */
export const TASKS: readonly Task[] = ["t2v", "i2v", "t2i", "i2i", "edit"];
/** Tasks per modality. */
export const TASKS_OF: Readonly<Record<Modality, readonly Task[]>> = {
  image: ["t2i", "i2i", "edit"],
  video: ["t2v", "i2v"],
};
/** Every model status. */
export const MODEL_STATUSES: readonly ModelStatus[] = ["active", "preview", "coming_soon", "deprecated"];
/** Statuses whose models accept generation requests. */
export const ROUTABLE_STATUSES: readonly ModelStatus[] = ["active", "preview"];

/** Sampler names the API accepts (§7). */
export const SAMPLERS = ["euler", "heun", "res_2m", "res_3s", "res_2m_sde", "res_3s_sde", "uni_pc"] as const;
/** Scheduler names the API accepts (§7). */
export const SCHEDULERS = ["simple", "beta", "beta57", "exponential", "karras", "bong_tangent"] as const;
export type Sampler = (typeof SAMPLERS)[number];
export type Scheduler = (typeof SCHEDULERS)[number];

/**
 * Engine a family runs on when nothing else is said (the original spec's `Backend` parameter: flux, qwen,
 * sana, zimage → nunchaku; sdxl, sd3, sd35 → tensorrt; wan, ltx → torch).
 */
export const FAMILY_DEFAULT_ENGINE: Readonly<Record<string, Engine>> = Object.freeze({
  flux: "nunchaku",
  qwen: "nunchaku",
  sana: "nunchaku",
  zimage: "nunchaku",
  sdxl: "tensorrt",
  sd3: "tensorrt",
  sd35: "tensorrt",
  wan: "torch",
  ltx: "torch",
});

/** An inclusive numeric range; a missing bound is open. */
export interface NumericRange {
  readonly min?: number;
  readonly max?: number;
}

/** A generation parameter's global range and whether it must be an integer. */
export interface ParamRange extends NumericRange {
  readonly integer: boolean;
}

/**
 * The numeric generation parameters of each modality with their global ranges (API.md §3, the original
 * request schemas). A model's `limits` may only narrow these.
 */
export const PARAM_RANGES: Readonly<Record<Modality, Readonly<Record<string, ParamRange>>>> = Object.freeze({
  image: Object.freeze({
    steps: { min: 1, max: 150, integer: true },
    cfg: { min: 0, max: 20, integer: false },
    guidance: { min: 0, max: 30, integer: false },
    strength: { min: 0, max: 1, integer: false },
    count: { min: 1, max: 4, integer: true },
    eta: { min: 0, max: 2, integer: false },
    clip_skip: { min: 0, max: 12, integer: true },
    detail_amount: { min: -5, max: 5, integer: false },
    detail_start: { min: 0, max: 1, integer: false },
    detail_end: { min: 0, max: 1, integer: false },
  }),
  video: Object.freeze({
    steps: { min: 1, max: 50, integer: true },
    cfg: { min: 0, max: 20, integer: false },
    duration: { min: 0.5, max: 10, integer: false },
    motion_strength: { min: 0, max: 1, integer: false },
    // The original gives shift no range ("-1 = use model default"); any finite number passes.
    shift: { integer: false },
  }),
});
