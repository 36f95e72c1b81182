// A catalogue model (`ModelEntry`), a LoRA, and what follows from a model: its default engine and the
// effective range of each parameter.
import { FAMILY_DEFAULT_ENGINE, PARAM_RANGES } from "./tables.js";
import type {
  Engine,
  Modality,
  ModelStatus,
  NumericRange,
  ParamRange,
  Sampler,
  Scheduler,
  Task,
} from "./tables.js";

/** A recommended configuration of a model (`ModelPreset`). */
export interface ModelPreset {
  readonly sampler?: Sampler;
  readonly scheduler?: Scheduler;
  readonly steps?: number;
  readonly cfg?: number;
  readonly guidance?: number;
  readonly notes?: string;
}

/** Per-model narrowing of {@link PARAM_RANGES}, keyed by parameter name. */
export type ModelLimits = Readonly<Record<string, NumericRange>>;

/** One catalogue model: the `/models` `ModelCapability` plus parameter limits. */
export interface ModelEntry {
  readonly family: string;
  readonly model: string;
  readonly modality: Modality;
  readonly tasks: readonly Task[];
  readonly formats: readonly string[];
  /** Engines that can run the model, in preference order. */
  readonly backends: readonly Engine[];
  readonly default_backend?: Engine;
  readonly status: ModelStatus;
  /** Hugging Face ids (`org/name`) that resolve to this model. */
  readonly aliases: readonly string[];
  readonly presets?: Readonly<Record<string, ModelPreset>>;
  readonly notes?: string;
  readonly limits?: ModelLimits;
}

/** A curated LoRA (`GET /models/loras`). */
export interface Lora {
  readonly id: string;
  readonly name: string;
  readonly families: readonly string[];
  readonly effect: string;
  readonly recommended_weight: readonly number[];
  readonly source: string;
}

/** A `family/model` pair, as `GET /models/aliases` maps each Hugging Face id. */
export interface ModelRef {
  readonly family: string;
  readonly model: string;
}

/**
 * The engine a model runs on when a request names none: the catalogue's `default_backend`, else the
 * family default of the original spec when the model offers it, else the model's first engine.
 */
export function defaultEngine(entry: ModelEntry): Engine {
  if (entry.default_backend !== undefined) return entry.default_backend;
  const familyDefault = FAMILY_DEFAULT_ENGINE[entry.family];
  if (familyDefault !== undefined && entry.backends.includes(familyDefault)) return familyDefault;
  return entry.backends[0] ?? "torch";
}

/** The effective range of a numeric parameter for a model: the global range narrowed by `limits`. */
export function paramRange(entry: ModelEntry, param: string): ParamRange | undefined {
  const global = PARAM_RANGES[entry.modality][param];
  if (global === undefined) return undefined;
  const narrow = entry.limits?.[param];
  const min = maxDefined(global.min, narrow?.min);
  const max = minDefined(global.max, narrow?.max);
  return {
    integer: global.integer,
    ...(min !== undefined && { min }),
    ...(max !== undefined && { max }),
  };
}

function maxDefined(a: number | undefined, b: number | undefined): number | undefined {
  return a === undefined ? b : b === undefined ? a : Math.max(a, b);
}
function minDefined(a: number | undefined, b: number | undefined): number | undefined {
  return a === undefined ? b : b === undefined ? a : Math.min(a, b);
}

/** `1–150`, `≥ 0`, `any number`. */
export function describeRange(r: NumericRange): string {
  if (r.min !== undefined && r.max !== undefined) return `${r.min}–${r.max}`;
  if (r.min !== undefined) return `≥ ${r.min}`;
  if (r.max !== undefined) return `≤ ${r.max}`;
  return "any number";
}
